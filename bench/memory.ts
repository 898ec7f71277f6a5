// Figure 6, memory of the pushpool process (from /proc): RSS idle after start-up, RSS idle after its
// first dispatch (the Google clients loaded), and during bursts of runs sent at the deployed
// concurrency (cloudbuild.yaml's _CONCURRENCY: Cloud Run sends one instance no more requests at
// once, and PUSHPOOL_MAX_IN_FLIGHT matches it) — peak RSS (the kernel's high-water mark, VmHWM)
// and RSS 10 s after each burst — against the in-memory Prefect stand-in. Further bursts show
// whether memory comes back, keeps growing, or levels off.
import { loadavg } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LoopbackPeers } from './loopback-peers.ts'
import { startPushpool } from './pushpool-process.ts'
import { sendWebhooks } from './load.ts'

/** How long after a burst its RSS is read: long enough for the drives' garbage to be collected. */
export const SETTLE_MS = 10_000
/**
 * A second idle reading after the first dispatch: V8's memory reducer compacts the heap and gives
 * pages back once allocation has stopped for 8 s (--gc-memory-reducer-start-delay-ms, which
 * NODE_OPTIONS may not set), after the 3 s reading.
 */
export const IDLE_SETTLED_MS = 12_000

export interface MemoryResult {
  entry: string
  /** The environment it ran with besides pushpool's configuration (the image's ENV). */
  env: Record<string, string>
  /** The 1-minute load average when the idle figures were taken. */
  load_1m: number
  rss_idle_start_mb: number
  rss_idle_warm_mb: number
  /** RSS idle IDLE_SETTLED_MS after the first dispatch: V8's memory reducer (8 s after activity) has run by then. */
  rss_idle_settled_mb: number
  idle_settled_ms: number
  /** Webhooks in flight at once during a burst. */
  concurrency: number
  settle_ms: number
  bursts: Array<{ runs: number, peak_rss_mb: number, rss_after_mb: number, wall_ms: number, launched: number, replies: Record<string, number>, load_1m: number }>
}

export async function measureMemory (o: { entry: string, env?: Record<string, string>, peers: LoopbackPeers, pool: string, burstRuns: number, bursts: number, concurrency: number, log: (line: string) => void }): Promise<MemoryResult> {
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
    await sleep(IDLE_SETTLED_MS - 3000)
    const result: MemoryResult = {
      entry: o.entry, env, load_1m: load, rss_idle_start_mb: rssStart, rss_idle_warm_mb: rssWarm,
      rss_idle_settled_mb: pushpool.rssMb(), idle_settled_ms: IDLE_SETTLED_MS, concurrency: o.concurrency, settle_ms: SETTLE_MS, bursts: []
    }
    for (let i = 0; i < o.bursts; i++) {
      const ids = await o.peers.createFlowRuns(o.burstRuns)
      pushpool.client.dropIdleSockets()
      const burstLoad = Math.round(loadavg()[0] * 100) / 100
      const sent = await sendWebhooks(pushpool, ids, o.concurrency)
      const peak = pushpool.peakRssMb()
      await sleep(SETTLE_MS)
      result.bursts.push({ runs: ids.length, peak_rss_mb: peak, rss_after_mb: pushpool.rssMb(), wall_ms: sent.wallMs, launched: sent.launched, replies: sent.replies, load_1m: burstLoad })
    }
    o.log(`  idle ${rssStart.toFixed(1)} MB after start, ${rssWarm.toFixed(1)} MB 3 s after the first dispatch, ${result.rss_idle_settled_mb.toFixed(1)} MB ${IDLE_SETTLED_MS / 1000} s after; ` +
      result.bursts.map(b => `burst of ${b.runs}, ${o.concurrency} at once: peak ${b.peak_rss_mb.toFixed(1)} MB, ${b.rss_after_mb.toFixed(1)} MB ${SETTLE_MS / 1000} s later (${b.launched} launched in ${(b.wall_ms / 1000).toFixed(1)} s)`).join('; '))
    return result
  } finally {
    await pushpool.stop()
  }
}
