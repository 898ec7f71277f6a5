// Figure 2, scheduled-run start delay: runs due at fixed near-future times, the same times in
// every pool, that nobody announced — as the runs Prefect's scheduler creates from a deployment
// schedule, which it inserts without a Scheduled event. pushpool finds them through reconcile's
// prefetch (driven on a timer, as Cloud Scheduler would) or through the Late event; the worker
// when it polls. Delay = Pending state time − the run's scheduled time. Negative means the run was
// handed to its infrastructure early: pushpool (PUSHPOOL_PREFETCH_SECONDS) and Prefect's worker
// (PREFECT_WORKER_PREFETCH_SECONDS) both prefetch up to 10 s by default.
//
// Why not a real deployment schedule: Prefect 3.8.8's scheduler fails in the repo's virtualenv
// (SQLAlchemy 2.1.9: "Can't evaluate bulk DML statement" in _insert_scheduled_flow_runs), so a
// schedule never yields a run there.
import { setTimeout as sleep } from 'node:timers/promises'
import { pendingMinusScheduledTimeMs, states, waitForPending, type RealPrefect } from './peers.ts'
import type { State } from '../src/prefect/types.ts'

export interface ScheduledTarget {
  label: string
  deploymentId: string
}

export interface ScheduledOptions {
  prefect: RealPrefect
  targets: ScheduledTarget[]
  repetitions: number
  intervalSeconds: number
  /** Seconds from now to the first run, so the scheduler has created every run well before it is due. */
  leadSeconds: number
  /** Names of the automations that call pushpool (`<pool>:`), switched off while runs are created. */
  automationPrefixes: string[]
  log: (line: string) => void
}

export interface ScheduledResult {
  /** label → delays in ms, one per run. */
  delays: Record<string, number[]>
  /** label → the state the run left for Pending: "Scheduled" (prefetched or polled) or "Late". */
  via: Record<string, Record<string, number>>
  times: string[]
}

export async function measureScheduled (o: ScheduledOptions): Promise<ScheduledResult> {
  const fixtures = o.prefect.fixtures
  const first = Math.ceil((Date.now() + o.leadSeconds * 1000) / 1000) * 1000
  const times = Array.from({ length: o.repetitions }, (_, i) => new Date(first + i * o.intervalSeconds * 1000))
  o.log(`  ${o.repetitions} runs per pool every ${o.intervalSeconds} s from ${times[0].toISOString()}`)

  // The scheduler inserts its runs without orchestration, so no Scheduled event reaches an
  // automation. Creating them through the API does emit one; with pushpool's automations
  // switched off meanwhile, pushpool learns of these runs exactly as of scheduler-made ones.
  const automations = (await fixtures.request<Array<{ id: string, name: string }>>('POST', '/automations/filter', {}))
    .filter(a => o.automationPrefixes.some(p => a.name.startsWith(p)))
  for (const a of automations) await fixtures.request('PATCH', `/automations/${a.id}`, { enabled: false })
  await sleep(3000) // the triggers service reloads automations on change
  const created: Array<{ label: string, id: string }> = []
  for (const when of times) {
    for (const target of o.targets) {
      const run = await fixtures.createFlowRun(target.deploymentId, {
        state: { type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: when.toISOString() } }
      })
      created.push({ label: target.label, id: run.id })
    }
  }
  await sleep(3000) // every creation event has been evaluated (and ignored)
  for (const a of automations) await fixtures.request('PATCH', `/automations/${a.id}`, { enabled: true })
  if (Date.now() > first - 10_000) o.log('  warning: the first run was created less than 10 s before it was due')

  const deadline = times[times.length - 1].getTime() + 120_000
  const result: ScheduledResult = { delays: {}, via: {}, times: times.map(t => t.toISOString()) }
  for (const target of o.targets) { result.delays[target.label] = []; result.via[target.label] = {} }
  for (const run of created) {
    const history: State[] = await waitForPending(o.prefect, run.id, Math.max(1000, deadline - Date.now())).catch(() => states(o.prefect, run.id))
    const delay = pendingMinusScheduledTimeMs(history)
    result.delays[run.label].push(delay)
    const pendingAt = history.findIndex(s => s.type === 'PENDING')
    const before = pendingAt > 0 ? history[pendingAt - 1].name : 'never Pending'
    result.via[run.label][before] = (result.via[run.label][before] ?? 0) + 1
  }
  for (const target of o.targets) {
    o.log(`  ${target.label}: ${result.delays[target.label].map(d => (d / 1000).toFixed(1)).join(', ')} s`)
  }
  return result
}
