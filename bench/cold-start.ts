// Figure 5, cold start: from just before spawn() until /readyz answers 200, and until the first
// webhook is answered 202 launched (which loads the Google clients on first use). Each start is a
// fresh process with a fresh SQLite file, as a new Cloud Run instance would have.
import type { LoopbackPeers } from './loopback-peers.ts'
import { startPushpool } from './pushpool-process.ts'

export interface ColdStartResult {
  entry: string
  ready_ms: number[]
  first_dispatch_ms: number[]
  /** RSS right after /readyz first answered. */
  rss_ready_mb: number[]
}

export async function measureColdStart (o: { entry: string, starts: number, peers: LoopbackPeers, pool: string, env?: Record<string, string>, log: (line: string) => void }): Promise<ColdStartResult> {
  const result: ColdStartResult = { entry: o.entry, ready_ms: [], first_dispatch_ms: [], rss_ready_mb: [] }
  for (let i = 0; i < o.starts; i++) {
    const [flowRunId] = await o.peers.createFlowRuns(1)
    const pushpool = await startPushpool({
      entry: o.entry,
      name: 'cold-start',
      env: { PREFECT_API_URL: o.peers.prefectApiUrl, PUSHPOOL_POOLS: o.pool, PUSHPOOL_CLOUD_RUN_ENDPOINT: o.peers.cloudRunEndpoint, ...o.env }
    })
    try {
      result.rss_ready_mb.push(pushpool.rssMb())
      const { status, body } = await pushpool.webhook(flowRunId)
      const first = performance.now() - pushpool.spawnedAt
      if (status !== 202 || body?.state !== 'launched') throw new Error(`first webhook answered ${status} ${JSON.stringify(body)}`)
      result.ready_ms.push(pushpool.readyMs)
      result.first_dispatch_ms.push(first)
    } finally {
      await pushpool.stop()
    }
  }
  o.log(`  ${o.entry}: ready ${result.ready_ms.map(v => v.toFixed(0)).join(', ')} ms; first dispatch ${result.first_dispatch_ms.map(v => v.toFixed(0)).join(', ')} ms`)
  return result
}
