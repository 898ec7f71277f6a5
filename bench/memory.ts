// Figure 6, memory of the pushpool process (from /proc): RSS idle after start-up, RSS idle after its
// first dispatch (the Google clients loaded), and peak RSS (the kernel's high-water mark, VmHWM)
// during bursts of runs whose webhooks all arrive at once — against the in-memory Prefect stand-in.
// Further bursts show whether memory comes back, keeps growing, or levels off.
import { loadavg } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LoopbackPeers } from './loopback-peers.ts'
import { startPushpool } from './pushpool-process.ts'
import { sendWebhooks } from './load.ts'

export interface MemoryResult {
  entry: string
  /** The environment it ran with besides pushpool's configuration (the image's ENV). */
  env: Record<string, string>
  /** The 1-minute load average when the idle figures were taken. */
  load_1m: number
  rss_idle_start_mb: number
  rss_idle_warm_mb: number
  bursts: Array<{ runs: number, peak_rss_mb: number, rss_after_mb: number, wall_ms: number, launched: number, replies: Record<string, number> }>
}

export async function measureMemory (o: { entry: string, env?: Record<string, string>, peers: LoopbackPeers, pool: string, burstRuns: number, bursts: number, log: (line: string) => void }): Promise<MemoryResult> {
  const env = o.env ?? {}
  const pushpool = await startPushpool({
    entry: o.entry,
    name: 'memory',
    env: { ...env, PREFECT_API_URL: o.peers.prefectApiUrl, PUSHPOOL_POOLS: o.pool, PUSHPOOL_CLOUD_RUN_ENDPOINT: o.peers.cloudRunEndpoint }
  })
  try {
    await sleep(3000)
    const rssStart = pushpool.rssMb()
    await sendWebhooks(pushpool, await o.peers.createFlowRuns(1), 1)
    await sleep(3000)
    const rssWarm = pushpool.rssMb()
    const load = Math.round(loadavg()[0] * 100) / 100
    const result: MemoryResult = { entry: o.entry, env, load_1m: load, rss_idle_start_mb: rssStart, rss_idle_warm_mb: rssWarm, bursts: [] }
    for (let i = 0; i < o.bursts; i++) {
      const ids = await o.peers.createFlowRuns(o.burstRuns)
      pushpool.client.dropIdleSockets()
      const load = await sendWebhooks(pushpool, ids, ids.length)
      const peak = pushpool.peakRssMb()
      await sleep(5000)
      result.bursts.push({ runs: ids.length, peak_rss_mb: peak, rss_after_mb: pushpool.rssMb(), wall_ms: load.wallMs, launched: load.launched, replies: load.replies })
    }
    o.log(`  idle ${rssStart.toFixed(1)} MB after start, ${rssWarm.toFixed(1)} MB after the first dispatch; ` +
      result.bursts.map(b => `burst of ${b.runs}: peak ${b.peak_rss_mb.toFixed(1)} MB, ${b.rss_after_mb.toFixed(1)} MB 5 s later (${b.launched} launched in ${(b.wall_ms / 1000).toFixed(1)} s)`).join('; '))
    return result
  } finally {
    await pushpool.stop()
  }
}
