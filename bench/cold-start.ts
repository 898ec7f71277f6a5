// Figure 5, cold start: from just before spawn() until /readyz answers 200, and until the first
// webhook is answered 202 launched (which loads the Google clients on first use). Each start is a
// fresh process with a fresh SQLite file, as a new Cloud Run instance would have. Several entries
// (the artifact, the sources, …) are started in turn, one start of each per round, so that a change
// in the machine's load falls on all of them alike; each sample keeps the load average it was taken
// at, and the process's CPU time, which a busy machine inflates far less than wall time.
import { loadavg } from 'node:os'
import type { LoopbackPeers } from './loopback-peers.ts'
import { startPushpool } from './pushpool-process.ts'

export interface ColdStartVariant {
  /** A name for the figure, e.g. `artifact`. */
  name: string
  entry: string
  env?: Record<string, string>
  nodeArgs?: string[]
}

export interface ColdStartResult {
  name: string
  entry: string
  env: Record<string, string>
  ready_ms: number[]
  first_dispatch_ms: number[]
  /** CPU time (user + system, 10 ms ticks) of the process when /readyz first answered. */
  cpu_ready_ms: number[]
  /** … and when the first webhook was answered. */
  cpu_first_dispatch_ms: number[]
  /** RSS right after /readyz first answered. */
  rss_ready_mb: number[]
  /** The 1-minute load average when each start began. */
  load_1m: number[]
}

export async function measureColdStarts (o: { variants: ColdStartVariant[], starts: number, peers: LoopbackPeers, pool: string, log: (line: string) => void }): Promise<ColdStartResult[]> {
  const results: ColdStartResult[] = o.variants.map(v => ({
    name: v.name, entry: v.entry, env: v.env ?? {}, ready_ms: [], first_dispatch_ms: [], cpu_ready_ms: [], cpu_first_dispatch_ms: [], rss_ready_mb: [], load_1m: []
  }))
  for (let i = 0; i < o.starts; i++) {
    for (const [index, variant] of o.variants.entries()) {
      const result = results[index]
      const [flowRunId] = await o.peers.createFlowRuns(1)
      result.load_1m.push(Math.round(loadavg()[0] * 100) / 100)
      const pushpool = await startPushpool({
        entry: variant.entry,
        name: `cold-${variant.name}`,
        ...(variant.nodeArgs !== undefined ? { nodeArgs: variant.nodeArgs } : {}),
        env: { PREFECT_API_URL: o.peers.prefectApiUrl, PUSHPOOL_POOLS: o.pool, PUSHPOOL_CLOUD_RUN_ENDPOINT: o.peers.cloudRunEndpoint, ...variant.env }
      })
      try {
        result.cpu_ready_ms.push(pushpool.cpuMs())
        result.rss_ready_mb.push(pushpool.rssMb())
        const { status, body } = await pushpool.webhook(flowRunId)
        const first = performance.now() - pushpool.spawnedAt
        result.cpu_first_dispatch_ms.push(pushpool.cpuMs())
        if (status !== 202 || body?.state !== 'launched') throw new Error(`${variant.name}: the first webhook answered ${status} ${JSON.stringify(body)}`)
        result.ready_ms.push(pushpool.readyMs)
        result.first_dispatch_ms.push(first)
      } finally {
        await pushpool.stop()
      }
    }
  }
  for (const r of results) {
    o.log(`  ${r.name} (${r.entry}): ready ${r.ready_ms.map(v => v.toFixed(0)).join(', ')} ms; first dispatch ${r.first_dispatch_ms.map(v => v.toFixed(0)).join(', ')} ms`)
  }
  return results
}
