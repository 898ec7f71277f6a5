// Reconcile (docs/architecture.md): the loop that makes webhooks optional. Prefect's call-webhook never
// retries, so anything a webhook missed, and everything that happens after launch, is caught here.
// One pass is idempotent, bounded in time, and safe to run on several instances at once: every
// dispatch it acts on is owned for the while (a lease, docs/architecture.md "Ownership"), and every
// other step goes through a compare-and-set in the store or through Prefect's own arbitration.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Config } from '../config.ts'
import type { PrefectClient } from '../prefect/client.ts'
import type { FlowRun } from '../prefect/types.ts'
import type { ActionableCursor, Store, Dispatch } from '../store/store.ts'
import type { Dispatcher } from './dispatcher.ts'
import type { Canceller } from './cancel.ts'
import type { DispatchClients } from './dispatch-clients.ts'
import { CRASH_LINES_MS, type DispatchActivity } from './activity.ts'
import { readExecution, deleteJob, cancelExecution, type ExecutionStatus } from '../cloudrun/executions.ts'
import { crashMessage, deletesJob, isTerminal, judgeEndedExecution, judgeRunning, mustReadExecution, scheduledTime, CLOSED_AS } from './decisions.ts'
import { Ownership } from './ownership.ts'

export interface ReconcileReport {
  checked: number
  finished: number
  crashed: number
  cancelled: number
  /** Executions cancelled because their run had ended without completing (no execution outlives its run). */
  reaped: number
  /** Timers armed for dispatches that wait for a time, and for runs due within the horizon. */
  armed: number
  driven: number
  discovered: number
  heartbeats: number
  jobs_deleted: number
  pruned: number
  errors: number
  /** The first failures behind `errors`: which step, about what, and why. */
  failures: ReconcileFailure[]
  duration_ms: number
  /** The time budget ran out before every step was done; the next pass continues. */
  truncated: boolean
}

export type ReconcileStep = 'drive' | 'check' | 'discover' | 'arm' | 'heartbeat' | 'prune'

export interface ReconcileFailure {
  step: ReconcileStep
  pool: string | null
  dispatch_id: string | null
  flow_run_id: string | null
  /** The error's message: pushpool's own wording and its peers', never a credential. */
  message: string
}

/** What a failure was about, for the report. */
interface About { step: ReconcileStep, pool?: string, dispatch?: Dispatch, flowRunId?: string }

export interface ReconcilerDeps {
  config: Config
  store: Store
  prefect: PrefectClient
  dispatcher: Dispatcher
  canceller: Canceller
  clients: DispatchClients
  activity: DispatchActivity
  log: Logger
  /** This process, as the owner named on the leases it takes. */
  instanceId: string
  /** Told of each execution reaped, for metrics. */
  onReaped?: (dispatch: Dispatch) => void
}

const BATCH = 100
/** The longest state message kept as a dispatch's error. */
const ERROR_CHARS = 500
/** Failures listed in one report; `errors` counts them all. */
const LISTED_FAILURES = 20
/** Runs armed per pool and pass: Prefect's largest page (a horizon of minutes holds far fewer). */
const UPCOMING_RUNS = 200
/** Waiting dispatches armed per pass. */
const WAITING_BATCH = 500
const FAR_FUTURE = '9999-12-31T00:00:00.000Z'

export class Reconciler {
  private readonly deps: ReconcilerDeps
  private running: Promise<ReconcileReport> | null = null
  /** Where the last pass stopped checking launched dispatches, when its budget ran out. */
  private launchedCursor: ActionableCursor | null = null

  constructor (deps: ReconcilerDeps) {
    this.deps = deps
  }

  /** One pass; a call while a pass runs in this process shares that pass. */
  run (): Promise<ReconcileReport> {
    this.running ??= this.pass().finally(() => { this.running = null })
    return this.running
  }

  private async pass (): Promise<ReconcileReport> {
    const { config, log } = this.deps
    const started = Date.now()
    const deadline = started + config.reconcileBudgetMs
    const report = emptyReport()
    // Launches first: a due run waits for nothing else, while closing a finished record can wait
    // for the next pass if the budget runs out.
    const passStarted = new Date(started).toISOString()
    const steps: Array<[ReconcileStep, () => Promise<void>]> = [
      ['drive', () => this.driveDue(report, deadline)],
      ['check', () => this.checkLaunched(report, deadline, passStarted)],
      ['discover', () => this.discover(report, deadline)],
      ['arm', () => this.armUpcoming(report, deadline)],
      ['heartbeat', () => this.heartbeat(report)],
      ['prune', () => this.prune(report)]
    ]
    for (const [step, work] of steps) {
      if (Date.now() >= deadline) { report.truncated = true; break }
      // A step that fails as a whole (its list could not be read) is reported, and the pass goes on.
      await this.attempt(report, { step }, work)
    }
    report.duration_ms = Date.now() - started
    log.info({ reconcile: report }, 'reconcile pass done')
    return report
  }

  /** Runs `work` for each item until the deadline, reporting failures instead of stopping on them. */
  private async each<T>(items: T[], report: ReconcileReport, deadline: number, about: (item: T) => About,
    work: (item: T) => Promise<void>): Promise<void> {
    for (const item of items) {
      if (Date.now() >= deadline) { report.truncated = true; return }
      await this.attempt(report, about(item), () => work(item))
    }
  }

  private async attempt (report: ReconcileReport, about: About, work: () => Promise<void>): Promise<void> {
    try {
      await work()
    } catch (err) {
      this.fail(report, about, err)
    }
  }

  /** Counts a failure, lists the first ones in the report, and logs it; the next pass retries what failed. */
  private fail (report: ReconcileReport, about: About, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    const failure: ReconcileFailure = {
      step: about.step,
      pool: about.pool ?? about.dispatch?.pool ?? null,
      dispatch_id: about.dispatch?.id ?? null,
      flow_run_id: about.flowRunId ?? about.dispatch?.flowRunId ?? null,
      message
    }
    report.errors++
    if (report.failures.length < LISTED_FAILURES) report.failures.push(failure)
    this.deps.log.warn({ failure }, 'reconcile step failed; the next pass retries it')
  }

  /**
   * Checks one launched dispatch now, as a pass would: Cloud Run pushed that its execution ended.
   * Null when there is no such launched dispatch, or another instance is checking it right now.
   */
  async checkNow (tail: string): Promise<Dispatch | null> {
    const { store, instanceId, dispatcher } = this.deps
    const dispatch = await store.launchedDispatchForExecution(tail)
    if (dispatch === null) return null
    const { prefectCallMs, cloudRunCallMs } = dispatcher.deadlines
    const taken = await Ownership.acquire(store, dispatch.id, ['launched'], instanceId, dispatcher.deadlines, 2 * prefectCallMs + cloudRunCallMs)
    if (taken === null) return null
    try {
      await this.check(taken.own, taken.dispatch, emptyReport())
    } finally {
      await taken.own.release()
    }
    return await store.getDispatch(dispatch.id)
  }

  /**
   * Launched dispatches: did the run end, did its infrastructure die under it, or does its
   * infrastructure outlive it? Each is owned while it is checked, so two instances never act on the
   * same one at once. Prefect is asked first; the execution is read only when the decision needs
   * it (decisions.ts mustReadExecution).
   */
  private async checkLaunched (report: ReconcileReport, deadline: number, passStarted: string): Promise<void> {
    const { store, instanceId, dispatcher } = this.deps
    const { prefectCallMs, cloudRunCallMs } = dispatcher.deadlines
    await this.eachLaunched(report, deadline, async dispatch => {
      if (dispatch.executionName === null) return
      // Launched after this pass began (by it, or by a webhook meanwhile): nothing can have happened
      // to it yet. Strictly after: a launch in the millisecond the pass began may be older than it.
      if (dispatch.launchedAt !== null && dispatch.launchedAt > passStarted) return
      // The run's read, the execution's, and a second read of the run.
      const taken = await Ownership.acquire(store, dispatch.id, ['launched'], instanceId, dispatcher.deadlines, 2 * prefectCallMs + cloudRunCallMs)
      if (taken === null) return
      try {
        await this.check(taken.own, taken.dispatch, report)
      } finally {
        await taken.own.release()
      }
    })
  }

  private async check (own: Ownership, dispatch: Dispatch, report: ReconcileReport): Promise<void> {
    const { prefect, clients, canceller, config } = this.deps
    report.checked++
    let flowRun = await prefect.readFlowRun(dispatch.flowRunId)
    if (!mustReadExecution(dispatch, flowRun, config.jobMode)) {
      const closed = await this.closeTerminal(own, dispatch, flowRun as FlowRun, null)
      if (closed !== null) report.finished++
      return
    }
    const status = await readExecution(await clients.forDispatch(dispatch), dispatch.executionName as string)
    if (status.outcome === 'running') {
      switch (judgeRunning(dispatch, flowRun, new Date())) {
        case 'reap':
          await this.reap(own, dispatch, flowRun, status)
          report.reaped++
          return
        case 'enforce-cancel':
          await canceller.enforce(own, flowRun as FlowRun, dispatch)
          report.cancelled++
          return
        case 'wait':
          return
      }
    }
    // The engine reports the run's end before its container exits: a run read as not terminal
    // before the execution was seen ended is read again, so a finished run is not taken for a
    // crashed one.
    if (!isTerminal(flowRun)) flowRun = await prefect.readFlowRun(dispatch.flowRunId)
    const closed = await this.close(own, dispatch, flowRun, status)
    if (closed?.state === 'crashed') report.crashed++
    else report.finished++
    if (closed !== null) await this.retireJob(own, closed, report)
  }

  /**
   * The run ended without completing (or is gone from Prefect), yet its execution still runs: a
   * hung container, billing until its task timeout. It is cancelled, and the record closed as
   * Prefect holds the run.
   */
  private async reap (own: Ownership, dispatch: Dispatch, flowRun: FlowRun | null, status: ExecutionStatus): Promise<void> {
    const { clients, log } = this.deps
    const why = flowRun === null ? 'the flow run no longer exists in Prefect' : `the flow run is ${flowRun.state?.name ?? flowRun.state?.type} in Prefect`
    await own.hold(this.deps.dispatcher.deadlines.cloudRunCallMs)
    const result = await cancelExecution(await clients.forDispatch(dispatch), dispatch.executionName as string)
    log.warn({ dispatch_id: dispatch.id, flow_run_id: dispatch.flowRunId, execution: dispatch.executionName }, `execution reaped: ${why}`)
    await own.note('execution_reaped', {}, { detail: `${why} but its execution still ran: it was cancelled`, reply: { cancel: result } })
    this.deps.onReaped?.(dispatch)
    this.deps.activity.cancelled(dispatch, `${why} but its execution still ran`, dispatch.executionName)
    if (flowRun === null) {
      await own.transition('close', { logUri: status.logUri ?? dispatch.logUri, dueAt: null },
        { detail: 'the flow run no longer exists; its execution was cancelled' }, { to: 'cancelled' })
    } else {
      await this.closeTerminal(own, dispatch, flowRun, status)
    }
  }

  /**
   * Every launched dispatch, a page at a time, from where the last pass ran out of budget round to
   * it again. A running execution leaves its record untouched, so without the cursor the same
   * oldest page would be checked every pass and newer runs never.
   */
  private async eachLaunched (report: ReconcileReport, deadline: number, work: (dispatch: Dispatch) => Promise<void>): Promise<void> {
    const seen = new Set<string>()
    let cursor = this.launchedCursor
    let wrapped = cursor === null
    for (;;) {
      const page = await this.deps.store.listActionable(['launched'], FAR_FUTURE, BATCH, cursor ?? undefined)
      if (page.length === 0) {
        if (wrapped) { this.launchedCursor = null; return }
        wrapped = true
        cursor = null
        continue
      }
      for (const dispatch of page) {
        if (Date.now() >= deadline) { report.truncated = true; this.launchedCursor = cursor; return }
        cursor = { updatedAt: dispatch.updatedAt, id: dispatch.id }
        // A record touched during the pass moves behind the cursor and comes round again.
        if (seen.has(dispatch.id)) continue
        seen.add(dispatch.id)
        await this.attempt(report, { step: 'check', dispatch }, () => work(dispatch))
      }
    }
  }

  /**
   * Prefect holds the run as terminal: record its state. `status` is the execution's, if read. A run
   * that ended Failed or Crashed carries Prefect's message as the dispatch's error, so an operator
   * sees why without opening Prefect.
   */
  private async closeTerminal (own: Ownership, dispatch: Dispatch, flowRun: FlowRun, status: ExecutionStatus | null): Promise<Dispatch | null> {
    const type = flowRun.state?.type ?? 'COMPLETED'
    const name = flowRun.state?.name ?? type
    const message = (flowRun.state?.message ?? '').trim()
    const failed = type === 'FAILED' || type === 'CRASHED'
    const patch = {
      ...(status !== null ? { logUri: status.logUri ?? dispatch.logUri } : {}),
      ...(failed ? { error: message === '' ? `flow run ended ${name}` : message.slice(0, ERROR_CHARS) } : {}),
      dueAt: null
    }
    const source = status === null ? 'Prefect reported it; the execution was not read' : `the execution ${status.outcome}`
    return await own.transition('close', patch,
      { detail: `flow run ended ${name}${message === '' ? '' : `: ${message.slice(0, ERROR_CHARS)}`} (${source})` },
      { to: CLOSED_AS[type] ?? 'succeeded' })
  }

  /**
   * The execution ended. If Prefect already holds a terminal state, record it; otherwise the
   * infrastructure died under the run, which becomes Crashed — proposed without force, so a
   * Completed, Failed or Cancelled run is never overwritten.
   */
  private async close (own: Ownership, dispatch: Dispatch, flowRun: FlowRun | null, status: ExecutionStatus): Promise<Dispatch | null> {
    const { prefect, activity, clients } = this.deps
    const patch = { logUri: status.logUri ?? dispatch.logUri, dueAt: null }
    const closing = judgeEndedExecution(flowRun, status, patch.logUri)
    if (closing.kind !== 'crash') {
      const closed = closing.kind === 'terminal'
        ? await this.closeTerminal(own, dispatch, flowRun as FlowRun, status)
        : await own.transition('close', patch, { detail: closing.detail }, { to: 'succeeded' })
      if (closed !== null) activity.ended(closed, flowRun, status, null)
      return closed
    }
    // The container died before its engine reported: its last lines say how, and the exit code
    // it logged names the crash as Prefect's worker names it.
    let output = null
    if (status.outcome !== 'missing') {
      await own.hold(CRASH_LINES_MS)
      output = await activity.lastLines(dispatch, status, await clients.forDispatch(dispatch))
    }
    const exitCode = output?.exitCode ?? null
    const message = crashMessage(status, patch.logUri, exitCode)
    await own.hold(this.deps.dispatcher.deadlines.prefectCallMs)
    const result = await prefect.setFlowRunState(dispatch.flowRunId, { type: 'CRASHED', name: 'Crashed', message }, false)
    const crashed = result.status === 'ACCEPT'
    const kept = result.state?.type === undefined ? undefined : CLOSED_AS[result.state.type]
    const closed = await own.transition('close', { ...patch, error: message },
      { detail: crashed ? message : `${message} (Prefect kept its state: ${result.details.reason ?? result.status})`,
        reply: { status: result.status, state: result.state?.type ?? null } },
      { to: crashed ? 'crashed' : kept ?? 'failed' })
    if (closed !== null) activity.ended(closed, flowRun, status, crashed ? { message, exitCode, output } : null)
    return closed
  }

  private async retireJob (own: Ownership, dispatch: Dispatch, report: ReconcileReport): Promise<void> {
    if (!deletesJob(dispatch, this.deps.config.jobMode) || dispatch.jobName === null) return
    await own.hold(this.deps.dispatcher.deadlines.cloudRunCallMs)
    await deleteJob(await this.deps.clients.forDispatch(dispatch), dispatch.jobName)
    report.jobs_deleted++
  }

  /**
   * Deferred runs now due, launches waiting to retry, and drives cut short: a dispatch on its way
   * that no live lease holds (its drive's process died, or the drive outran its own deadlines).
   * The lease says so at once when it runs out; there is no guess of how long a drive may take.
   */
  private async driveDue (report: ReconcileReport, deadline: number): Promise<void> {
    const { store, config, dispatcher } = this.deps
    const horizon = new Date(Date.now() + config.prefetchSeconds * 1000).toISOString()
    const due = await store.listActionable(['deferred', 'retrying'], horizon, BATCH)
    const cutShort = await store.listActionable(['received', 'claimed', 'launching'], FAR_FUTURE, BATCH)
    await this.each([...due, ...cutShort], report, deadline, dispatch => ({ step: 'drive', dispatch }), async dispatch => {
      const after = await dispatcher.driveIfFree(dispatch)
      // Only a dispatch that moved on counts: one still held back by a limit is not "driven".
      if (after !== null && after.state !== 'deferred' && after.state !== 'retrying') report.driven++
    })
  }

  /** Runs Prefect would hand a polling worker now: catches every webhook that never came. */
  private async discover (report: ReconcileReport, deadline: number): Promise<void> {
    const { config, prefect, dispatcher } = this.deps
    const before = new Date(Date.now() + config.prefetchSeconds * 1000)
    for (const pool of config.pools) {
      let runs: FlowRun[]
      try {
        runs = await prefect.getScheduledFlowRuns(pool, before, BATCH)
      } catch (err) {
        this.fail(report, { step: 'discover', pool }, err)
        continue
      }
      await this.each(runs, report, deadline, run => ({ step: 'discover', pool, flowRunId: run.id }), async run => {
        const outcome = await dispatcher.handle({ flowRunId: run.id, event: 'reconcile', receivedAt: new Date() })
        if (outcome.status === 'accepted') report.discovered++
      })
    }
  }

  /**
   * Timers, so a run starts on time with no instance alive in between: every run of a served pool
   * due within the horizon (longer than reconcile's tick) gets a deferred dispatch and its timer,
   * and every dispatch already waiting for a time within it has its timer armed again (idempotent:
   * a timer lost, or never armed because its backend was down, is armed now).
   */
  private async armUpcoming (report: ReconcileReport, deadline: number): Promise<void> {
    const { config, prefect, dispatcher } = this.deps
    const horizon = new Date(Date.now() + config.timerHorizonSeconds * 1000)
    for (const pool of config.pools) {
      let runs: FlowRun[]
      try {
        runs = await prefect.listUpcomingFlowRuns(pool, horizon, UPCOMING_RUNS)
      } catch (err) {
        this.fail(report, { step: 'arm', pool }, err)
        continue
      }
      // Due within the prefetch window: discover has just dispatched those.
      const later = runs.filter(run => (scheduledTime(run)?.getTime() ?? 0) > Date.now() + config.prefetchSeconds * 1000)
      await this.each(later, report, deadline, run => ({ step: 'arm', pool, flowRunId: run.id }), async run => {
        const outcome = await dispatcher.handle({ flowRunId: run.id, event: 'reconcile look-ahead', receivedAt: new Date() })
        if (outcome.status === 'accepted') report.armed++
      })
    }
    report.armed += await this.armWaiting(horizon)
  }

  /** Arms the timer of every dispatch waiting for a time before `horizon`; returns how many. */
  async armWaiting (horizon = new Date(Date.now() + this.deps.config.timerHorizonSeconds * 1000)): Promise<number> {
    const waiting = await this.deps.store.listActionable(['deferred', 'retrying'], horizon.toISOString(), WAITING_BATCH)
    for (const dispatch of waiting) await this.deps.dispatcher.schedule(dispatch)
    return waiting.length
  }

  /** A worker heartbeat per pool, so Prefect's UI shows the pool READY rather than NOT_READY. */
  private async heartbeat (report: ReconcileReport): Promise<void> {
    for (const pool of this.deps.config.pools) {
      try {
        await this.deps.prefect.workerHeartbeat(pool, this.deps.config.workerName, 90)
        report.heartbeats++
      } catch (err) {
        this.fail(report, { step: 'heartbeat', pool }, err)
      }
    }
  }

  private async prune (report: ReconcileReport): Promise<void> {
    const before = new Date(Date.now() - this.deps.config.retentionDays * 86_400_000).toISOString()
    report.pruned = await this.deps.store.prune(before)
  }
}

function emptyReport (): ReconcileReport {
  return {
    checked: 0, finished: 0, crashed: 0, cancelled: 0, reaped: 0, armed: 0, driven: 0, discovered: 0,
    heartbeats: 0, jobs_deleted: 0, pruned: 0, errors: 0, failures: [], duration_ms: 0, truncated: false
  }
}
