// Figure 2, scheduled-run start delay: runs that Prefect's scheduler creates from a deployment
// schedule. Every deployment measured (each pushpool pool's and the worker's) gets the same
// schedule, `FREQ=SECONDLY;INTERVAL=<interval>;COUNT=<repetitions>` from a shared DTSTART ahead, so
// every pool gets exactly that many runs, due at the same times. The scheduler inserts them straight
// into the database, without a Scheduled event, so no automation tells pushpool: it finds them
// through reconcile (driven on a timer, as Cloud Scheduler would), whose look-ahead arms a timer per
// run, or through the Late event; the worker when it polls. Delay = Pending state time − the run's
// scheduled time. Negative means the run was handed to its infrastructure early: pushpool
// (PUSHPOOL_PREFETCH_SECONDS) and Prefect's worker (PREFECT_WORKER_PREFETCH_SECONDS) both prefetch
// up to 10 s by default.
//
// A schedule is added as `prefect deploy` adds one: by updating the deployment with it (PATCH
// /deployments/{id} with `schedules`). That marks the deployment updated, so the scheduler's
// recent-deployments loop (every 5 s by default) makes its runs within seconds, with every server
// setting at Prefect's default.
//
// Two cases, measured apart:
// - steady state: the schedule is added `leadSeconds` ahead, more than one reconcile tick, as
//   Prefect's scheduler makes a schedule's runs hours ahead once it runs (MIN_SCHEDULED_TIME 1 h),
//   so a reconcile pass sees every run before it is due and arms its timer;
// - the first runs of a schedule added less than a tick before they are due: no pass may come
//   between their creation and their time. What bounds their delay: the first reconcile pass after
//   their creation (each run's record says when that was, from the reconcile timer's ticks), or the
//   Late event LATE_RUNS_AFTER_SECONDS after the run was due, whichever first. The Late event
//   rarely helps: Prefect links a state-change event to the run's previous state (`follows`) when
//   that state is under 5 minutes old, and its triggers service holds such an event until it has
//   seen the one it follows, for up to 15 minutes; the scheduler's Scheduled state emits no event,
//   so the Late event of a run created less than ~5 min before it went Late reaches no automation
//   in time. (Checked on Prefect 3.8.8: a scheduler-made run due 5.5 min after its creation had its
//   Late automation fire 5.5 s after it was due; one due 1 min after, none within the next 4.5 min.)
//
// COUNT bounds the schedule itself, so no scheduler setting (…_SCHEDULER_MIN_RUNS, MAX_RUNS,
// MIN/MAX_SCHEDULED_TIME) needs changing: with any of them the scheduler can only ever make these
// runs. Afterwards the schedules are deleted, which also deletes any of their runs still Scheduled
// or Late, so later phases see neither.
import { setTimeout as sleep } from 'node:timers/promises'
import { pendingMinusScheduledTimeMs, states, waitForPending, type RealPrefect } from './peers.ts'
import type { FlowRunDetail } from '../test/harness/prefect-fixtures.ts'
import type { State } from '../src/prefect/types.ts'

export interface ScheduledTarget {
  label: string
  deploymentId: string
  /** When reconcile passes were started for this target (epoch ms), if it has any. */
  reconcileTicks?: () => number[]
}

export interface ScheduleOptions {
  prefect: RealPrefect
  targets: ScheduledTarget[]
  repetitions: number
  intervalSeconds: number
  /** Seconds from adding the schedule to its first run. */
  leadSeconds: number
  /** Names the schedule (its slug), for the log. */
  name: string
  log: (line: string) => void
}

/** One run: when it was made and due, when it went Pending, and from which state. */
export interface ScheduledRun {
  label: string
  id: string
  due: string
  /** ms from the run's creation (by the scheduler) to its scheduled time. */
  created_before_due_ms: number
  /** Pending − scheduled time, ms (NaN: never Pending within the wait). */
  delay_ms: number
  /** The state the run left for Pending: "Scheduled" (prefetched, armed or polled) or "Late". */
  via: string
  /** The first reconcile pass started after the run was created, in ms after its scheduled time (null: no reconcile). */
  first_pass_after_creation_ms: number | null
}

export interface ScheduleResult {
  runs: ScheduledRun[]
  /** The schedule every target deployment was given (an RRuleSchedule, timezone UTC). */
  rrule: string
  times: string[]
  /** ms from adding the schedules until the scheduler had made every run, and how long before the first was due. */
  created_after_ms: number
  created_before_first_due_ms: number
}

export async function measureSchedule (o: ScheduleOptions): Promise<ScheduleResult> {
  const fixtures = o.prefect.fixtures
  const first = Math.ceil((Date.now() + o.leadSeconds * 1000) / 1000) * 1000
  const times = Array.from({ length: o.repetitions }, (_, i) => new Date(first + i * o.intervalSeconds * 1000).toISOString())
  // A floating DTSTART, which Prefect reads in the schedule's timezone (UTC).
  const dtstart = new Date(first).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '')
  const rrule = `DTSTART:${dtstart}\nRRULE:FREQ=SECONDLY;INTERVAL=${o.intervalSeconds};COUNT=${o.repetitions}`
  o.log(`  ${o.name}: ${rrule.replace('\n', ' ')} (UTC) on every deployment, ${o.leadSeconds} s ahead: ${o.repetitions} runs every ${o.intervalSeconds} s from ${times[0]}`)

  const schedules: Array<{ target: ScheduledTarget, scheduleId: string }> = []
  try {
    const added = Date.now()
    for (const target of o.targets) {
      await fixtures.request('PATCH', `/deployments/${target.deploymentId}`,
        { schedules: [{ schedule: { rrule, timezone: 'UTC' }, active: true, slug: o.name }] })
      const [schedule] = await fixtures.readDeploymentSchedules(target.deploymentId)
      schedules.push({ target, scheduleId: schedule.id })
    }

    // The scheduler's recent-deployments loop inserts the runs.
    const made: Array<{ target: ScheduledTarget, run: FlowRunDetail }> = []
    const waitUntil = first + o.intervalSeconds * 1000 * (o.repetitions - 1)
    for (const { target, scheduleId } of schedules) {
      let runs: FlowRunDetail[]
      for (;;) {
        runs = (await fixtures.readDeploymentFlowRuns(target.deploymentId))
          .filter(r => r.auto_scheduled && r.created_by?.type === 'SCHEDULE' && r.created_by.id === scheduleId)
        if (runs.length >= o.repetitions) break
        if (Date.now() > waitUntil) {
          throw new Error(`the scheduler made ${runs.length} of ${o.repetitions} runs for ${target.label}'s deployment ` +
            'by the time the last was due (is the scheduler service failing? see the server log)')
        }
        await sleep(200)
      }
      const got = runs.map(r => new Date(r.expected_start_time!).toISOString())
      if (runs.length !== o.repetitions || got.join() !== times.join()) {
        throw new Error(`the scheduler made runs for ${target.label} at ${got.join(', ')}, expected ${times.join(', ')}`)
      }
      for (const run of runs) made.push({ target, run })
    }
    const lastCreated = Math.max(...made.map(({ run }) => Date.parse(run.created ?? '')))
    o.log(`  the scheduler made all ${made.length} runs ${((lastCreated - added) / 1000).toFixed(1)} s after the schedules were added, ` +
      `${((first - lastCreated) / 1000).toFixed(0)} s before the first was due`)

    const deadline = waitUntil + 120_000
    const runs: ScheduledRun[] = []
    for (const { target, run } of made) {
      const history: State[] = await waitForPending(o.prefect, run.id, Math.max(1000, deadline - Date.now())).catch(() => states(o.prefect, run.id))
      const pendingAt = history.findIndex(s => s.type === 'PENDING')
      const due = Date.parse(run.expected_start_time!)
      const created = Date.parse(run.created ?? '')
      const pass = target.reconcileTicks?.().find(t => t >= created)
      runs.push({
        label: target.label,
        id: run.id,
        due: new Date(due).toISOString(),
        created_before_due_ms: due - created,
        delay_ms: pendingMinusScheduledTimeMs(history),
        via: pendingAt > 0 ? history[pendingAt - 1].name : 'never Pending',
        first_pass_after_creation_ms: target.reconcileTicks === undefined ? null : pass === undefined ? Number.NaN : pass - due
      })
    }
    for (const target of o.targets) {
      o.log(`  ${target.label}: ${runs.filter(r => r.label === target.label).map(r => `${(r.delay_ms / 1000).toFixed(1)}${r.via === 'Late' ? ' (Late)' : ''}`).join(', ')} s`)
    }
    return { runs, rrule, times, created_after_ms: lastCreated - added, created_before_first_due_ms: first - lastCreated }
  } finally {
    // Deleting a schedule also deletes its runs that are still Scheduled (or Late).
    for (const { target, scheduleId } of schedules) {
      await fixtures.deleteDeploymentSchedule(target.deploymentId, scheduleId)
        .catch((err: Error) => { o.log(`  could not delete the schedule of ${target.label}'s deployment: ${err.message}`) })
    }
  }
}
