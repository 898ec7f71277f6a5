// Figure 1, pickup latency: flow runs created due-now, one in the pool pushpool serves (through
// the automation's webhook) and one in the pool Prefect's process worker polls, at the same moment.
// Latency = Pending state time − Scheduled state time, both from Prefect's state history.
import { loadavg } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { pendingMinusScheduledMs, waitForPending, type RealPrefect } from './peers.ts'
import type { PushpoolProcess } from './pushpool-process.ts'

export interface PickupSamples {
  pushpool: number[]
  worker: number[]
  /** pushpool's runs, to split each latency at the webhook's arrival. */
  pushpoolRuns: Array<{ id: string, scheduledAt: number, pendingAt: number }>
  /** The first pair, before the measured ones: cold caches on both sides. */
  warmup: { pushpool: number, worker: number } | null
  /** The 1-minute load average as each measured pair began. */
  load_1m: number[]
}

export interface PickupOptions {
  prefect: RealPrefect
  pushpoolDeploymentId: string
  workerDeploymentId: string
  repetitions: number
  /** The worker's poll interval (PREFECT_WORKER_QUERY_SECONDS, 10 by default). */
  workerPollSeconds: number
  log: (line: string) => void
}

export async function measurePickup (o: PickupOptions): Promise<PickupSamples> {
  const samples: PickupSamples = { pushpool: [], worker: [], pushpoolRuns: [], warmup: null, load_1m: [] }
  for (let i = -1; i < o.repetitions; i++) {
    // A random wait, so the run lands at a random point of the worker's poll cycle rather than
    // just after the poll that picked the previous one.
    await sleep(Math.random() * o.workerPollSeconds * 1000)
    const load = Math.round(loadavg()[0] * 100) / 100
    const [pushRun, workerRun] = await Promise.all([
      o.prefect.fixtures.createFlowRun(o.pushpoolDeploymentId),
      o.prefect.fixtures.createFlowRun(o.workerDeploymentId)
    ])
    // The worker backs its polling off after errors (up to about a minute between polls), and
    // such a pickup is a sample like any other: it gets three minutes.
    const [pushHistory, workerHistory] = await Promise.all([
      waitForPending(o.prefect, pushRun.id, 60_000),
      waitForPending(o.prefect, workerRun.id, 180_000)
    ])
    const push = pendingMinusScheduledMs(pushHistory)
    const worker = pendingMinusScheduledMs(workerHistory)
    if (i < 0) {
      samples.warmup = { pushpool: push, worker }
      o.log(`  pickup warm-up (not counted): pushpool ${push.toFixed(0)} ms, worker ${worker.toFixed(0)} ms`)
    } else {
      samples.pushpool.push(push)
      samples.worker.push(worker)
      samples.load_1m.push(load)
      const scheduled = pushHistory.find(s => s.type === 'SCHEDULED')
      const pending = pushHistory.find(s => s.type === 'PENDING')
      if (scheduled !== undefined && pending !== undefined) {
        samples.pushpoolRuns.push({ id: pushRun.id, scheduledAt: Date.parse(scheduled.timestamp), pendingAt: Date.parse(pending.timestamp) })
      }
      o.log(`  pickup ${i + 1}/${o.repetitions}: pushpool ${push.toFixed(0)} ms, worker ${worker.toFixed(0)} ms`)
    }
    // The worker runs the flow in a subprocess; let it finish so it does not load the next sample.
    await o.prefect.fixtures.waitForFlowRunState(workerRun.id, ['COMPLETED', 'FAILED', 'CRASHED', 'CANCELLED'], 120_000)
      .catch(err => { o.log(`  (worker run ${workerRun.id} did not finish: ${(err as Error).message})`) })
  }
  return samples
}

/**
 * When pushpool received each run's webhook, from its JSON log: pushpool logs a request once, when
 * answered ("request completed": its time less its responseTime), and the dispatch's own lines
 * carry the same reqId and name the flow run.
 */
export function webhookArrivals (logText: string): Map<string, number> {
  const flowRunOf = new Map<string, string>()
  const arrivals = new Map<string, number>()
  for (const line of logText.split('\n')) {
    if (!line.startsWith('{')) continue
    let entry: { reqId?: string, time?: string, message?: string, flow_run_id?: string, responseTime?: number, req?: { url?: string } }
    try { entry = JSON.parse(line) } catch { continue }
    if (entry.reqId === undefined) continue
    if (entry.flow_run_id !== undefined && !flowRunOf.has(entry.reqId)) flowRunOf.set(entry.reqId, entry.flow_run_id)
    if (entry.message !== 'request completed' || entry.req?.url !== '/v1/webhooks/prefect' || entry.time === undefined || entry.responseTime === undefined) continue
    const flowRunId = flowRunOf.get(entry.reqId)
    if (flowRunId !== undefined && !arrivals.has(flowRunId)) arrivals.set(flowRunId, Date.parse(entry.time) - entry.responseTime)
  }
  return arrivals
}

/** Each part of webhook received → Pending, per run, ms. */
export interface PendingParts {
  /** Reading the run from Prefect, then recording the dispatch: webhook arrival → the dispatch's `received` event. */
  webhook_to_received: number[]
  /** The pool's and queue's snapshots (read from Prefect when older than 5 s), then the claim: `received` → `claimed`. */
  received_to_claimed: number[]
  /** Proposing Pending until Prefect stamps it: `claimed` → the Pending state's timestamp. */
  claimed_to_pending: number[]
}

/** Splits each run's webhook → Pending at its dispatch's events in pushpool's ledger (the admin API). */
export async function pendingParts (pushpool: PushpoolProcess, runs: Array<{ id: string, pendingAt: number }>,
  arrivals: Map<string, number>): Promise<PendingParts> {
  const parts: PendingParts = { webhook_to_received: [], received_to_claimed: [], claimed_to_pending: [] }
  for (const run of runs) {
    const arrival = arrivals.get(run.id)
    const page = JSON.parse(await pushpool.admin(`/v1/dispatches?flow_run_id=${run.id}`)) as { items: Array<{ id: string }> }
    if (arrival === undefined || page.items.length === 0) continue
    const detail = JSON.parse(await pushpool.admin(`/v1/dispatches/${page.items[0].id}`)) as { events: Array<{ type: string, at: string }> }
    const at = (type: string): number => Date.parse(detail.events.find(e => e.type === type)?.at ?? '')
    const [received, claimed] = [at('received'), at('claimed')]
    if (Number.isNaN(received) || Number.isNaN(claimed)) continue
    parts.webhook_to_received.push(received - arrival)
    parts.received_to_claimed.push(claimed - received)
    parts.claimed_to_pending.push(run.pendingAt - claimed)
  }
  return parts
}
