// Figure 2, scheduled-run start delay: runs that Prefect's scheduler creates from a deployment
// schedule. Every deployment measured (each pushpool pool's and the worker's) gets the same
// schedule, `FREQ=SECONDLY;INTERVAL=<interval>;COUNT=<repetitions>` from a shared DTSTART a little
// ahead, so every pool gets exactly that many runs, due at the same times. The scheduler inserts
// them straight into the database, without a Scheduled event, so no automation tells pushpool:
// it finds them through reconcile's prefetch (driven on a timer, as Cloud Scheduler would) or
// through the Late event; the worker when it polls. Delay = Pending state time − the run's
// scheduled time. Negative means the run was handed to its infrastructure early: pushpool
// (PUSHPOOL_PREFETCH_SECONDS) and Prefect's worker (PREFECT_WORKER_PREFETCH_SECONDS) both
// prefetch up to 10 s by default.
//
// The Late event rarely helps here. Prefect links a state-change event to the run's previous state
// (`follows`) when that state is under 5 minutes old, and its triggers service holds such an event
// until it has seen the one it follows, for up to 15 minutes. The scheduler's Scheduled state
// emits no event, so the Late event of a run created less than ~5 min before it went Late reaches
// no automation in time, and reconcile starts the run. The schedules are added `leadSeconds`
// (45 s in the bench) ahead, as for a new or changed schedule's first runs; a lead over 5 min
// would add over 4 minutes to the bench. In steady state the scheduler creates runs at least an
// hour ahead (PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME), and then the Late event does
// reach pushpool, LATE_RUNS_AFTER_SECONDS after the run was due. (Checked on Prefect 3.8.8: a
// scheduler-made run due 5.5 min after its creation had its Late automation fire 5.5 s after it
// was due; one due 1 min after, none within the next 4.5 min.)
//
// COUNT bounds the schedule itself, so no scheduler setting (…_SCHEDULER_MIN_RUNS, MAX_RUNS,
// MIN/MAX_SCHEDULED_TIME) needs changing: with any of them the scheduler can only ever make these
// runs (each has an idempotency key of deployment, schedule and time, so re-running the scheduler
// adds nothing). Afterwards the schedules are deleted, which also deletes any of their runs still
// Scheduled or Late, so later phases see neither.
import { setTimeout as sleep } from 'node:timers/promises'
import { pendingMinusScheduledTimeMs, states, waitForPending, type RealPrefect } from './peers.ts'
import type { FlowRunDetail } from '../test/harness/prefect-fixtures.ts'
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
  /** Seconds from now to the first run; the scheduler creates every run within a few seconds. */
  leadSeconds: number
  log: (line: string) => void
}

export interface ScheduledResult {
  /** label → delays in ms, one per run. */
  delays: Record<string, number[]>
  /** label → the state the run left for Pending: "Scheduled" (prefetched or polled) or "Late". */
  via: Record<string, Record<string, number>>
  times: string[]
  /** The schedule every target deployment was given (an RRuleSchedule, timezone UTC). */
  rrule: string
  /** ms from adding the schedules until the scheduler had created every run, and how long before the first was due. */
  created_after_ms: number
  created_before_first_due_ms: number
}

const SCHEDULE_SLUG = 'bench-scheduled'

export async function measureScheduled (o: ScheduledOptions): Promise<ScheduledResult> {
  const fixtures = o.prefect.fixtures
  const first = Math.ceil((Date.now() + o.leadSeconds * 1000) / 1000) * 1000
  const times = Array.from({ length: o.repetitions }, (_, i) => new Date(first + i * o.intervalSeconds * 1000).toISOString())
  // A floating DTSTART, which Prefect reads in the schedule's timezone (UTC).
  const dtstart = new Date(first).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '')
  const rrule = `DTSTART:${dtstart}\nRRULE:FREQ=SECONDLY;INTERVAL=${o.intervalSeconds};COUNT=${o.repetitions}`
  o.log(`  schedule on every deployment: ${rrule.replace('\n', ' ')} (UTC), i.e. ${o.repetitions} runs every ${o.intervalSeconds} s from ${times[0]}`)

  const schedules: Array<{ target: ScheduledTarget, scheduleId: string }> = []
  try {
    const added = Date.now()
    for (const target of o.targets) {
      const [schedule] = await fixtures.createDeploymentSchedules(target.deploymentId,
        [{ schedule: { rrule, timezone: 'UTC' }, active: true, slug: SCHEDULE_SLUG }])
      schedules.push({ target, scheduleId: schedule.id })
    }

    // The scheduler service (loop every 1 s, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS) inserts the runs.
    const created: Array<{ label: string, id: string }> = []
    const waitUntil = first - 10_000
    for (const { target, scheduleId } of schedules) {
      let runs: FlowRunDetail[]
      for (;;) {
        runs = (await fixtures.readDeploymentFlowRuns(target.deploymentId))
          .filter(r => r.auto_scheduled && r.created_by?.type === 'SCHEDULE' && r.created_by.id === scheduleId)
        if (runs.length >= o.repetitions) break
        if (Date.now() > waitUntil) {
          throw new Error(`the scheduler made ${runs.length} of ${o.repetitions} runs for ${target.label}'s deployment ` +
            'by 10 s before the first was due (is the scheduler service failing? see the server log)')
        }
        await sleep(200)
      }
      const got = runs.map(r => new Date(r.expected_start_time!).toISOString())
      if (runs.length !== o.repetitions || got.join() !== times.join()) {
        throw new Error(`the scheduler made runs for ${target.label} at ${got.join(', ')}, expected ${times.join(', ')}`)
      }
      for (const run of runs) created.push({ label: target.label, id: run.id })
    }
    const createdAfter = Date.now() - added
    o.log(`  the scheduler created all ${created.length} runs ${(createdAfter / 1000).toFixed(1)} s after the schedules were added, ` +
      `${((first - Date.now()) / 1000).toFixed(0)} s before the first was due`)
    const result: ScheduledResult = {
      delays: {}, via: {}, times, rrule, created_after_ms: createdAfter, created_before_first_due_ms: first - added - createdAfter
    }

    const deadline = first + (o.repetitions - 1) * o.intervalSeconds * 1000 + 120_000
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
  } finally {
    // Deleting a schedule also deletes its runs that are still Scheduled (or Late).
    for (const { target, scheduleId } of schedules) {
      await fixtures.deleteDeploymentSchedule(target.deploymentId, scheduleId)
        .catch((err: Error) => { o.log(`  could not delete the schedule of ${target.label}'s deployment: ${err.message}`) })
    }
  }
}
