// The dispatcher's and reconcile's decisions as pure functions of what they have read: no I/O, so
// each rule is tested on its own in milliseconds (test/dispatch/decisions.test.ts), while the
// modules that call them only read, act and record.
import type { FlowRun, OrchestrationResult, StateType } from '../prefect/types.ts'
import { TERMINAL_STATE_TYPES } from '../prefect/types.ts'
import type { Dispatch } from '../store/store.ts'
import { FINAL_STATES, type DispatchState } from '../store/transitions.ts'
import type { ExecutionStatus } from '../cloudrun/executions.ts'
import type { JobMode } from '../config.ts'
import type { Timer } from '../timers/timers.ts'
import { nonZeroExitMessage } from '../prefect/exit-codes.ts'

/** Scheduled-type states that start a new attempt of a run rather than restate the current one. */
const NEW_ATTEMPT_STATES = new Set(['AwaitingRetry', 'Resuming'])

export const CRASH_PREFIX = 'Failed to submit flow run to infrastructure: '

/** The dispatch state that records a run Prefect holds in a terminal state. */
export const CLOSED_AS: Partial<Record<StateType, DispatchState>> = {
  COMPLETED: 'succeeded', FAILED: 'failed', CANCELLED: 'cancelled', CRASHED: 'crashed'
}

/** Prefect holds the run in a terminal state (a run gone from Prefect is not: it has no state). */
export function isTerminal (flowRun: FlowRun | null): boolean {
  const type = flowRun?.state?.type
  return type !== undefined && TERMINAL_STATE_TYPES.includes(type)
}

/** The idempotency key of a run's current Scheduled-type state (docs/architecture.md: `<flow_run_id>:<state_id>`). */
export function dispatchKey (flowRun: FlowRun): string {
  return `${flowRun.id}:${flowRun.state?.id ?? ''}`
}

export type Triage =
  | { kind: 'ignore', reason: string }
  | { kind: 'cancelling' }
  | { kind: 'not-dispatchable' }
  | { kind: 'dispatchable' }

/** What a flow run read from Prefect asks of pushpool. */
export function triage (flowRunId: string, flowRun: FlowRun | null, pools: readonly string[]): Triage {
  if (flowRun === null) return { kind: 'ignore', reason: `flow run ${flowRunId} does not exist in Prefect` }
  const pool = flowRun.work_pool_name
  if (pool === null || !pools.includes(pool)) {
    return { kind: 'ignore', reason: `work pool ${pool ?? '(none)'} is not served by this pushpool (PUSHPOOL_POOLS)` }
  }
  if (flowRun.state?.type === 'CANCELLING') return { kind: 'cancelling' }
  if (flowRun.state?.type !== 'SCHEDULED') return { kind: 'not-dispatchable' }
  return { kind: 'dispatchable' }
}

/** When a Scheduled-type run is due: its state's scheduled time, else the run's next start time. */
export function scheduledTime (flowRun: FlowRun): Date | null {
  const when = flowRun.state?.state_details?.scheduled_time ?? flowRun.next_scheduled_start_time ?? null
  return when === null ? null : new Date(when)
}

/** The time to defer a run to, or null when it is due within the prefetch window and is to launch now. */
export function deferUntil (flowRun: FlowRun, now: Date, prefetchSeconds: number): Date | null {
  const due = scheduledTime(flowRun)
  return due !== null && due.getTime() > now.getTime() + prefetchSeconds * 1000 ? due : null
}

export type Attempt =
  | { kind: 'new' }
  /** An attempt of the run is under way; a new dispatch would only race it. */
  | { kind: 'current', dispatch: Dispatch }
  /** A dispatch still waiting to claim belongs to an older state: replace it, so it cannot launch at a stale time. */
  | { kind: 'supersede', dispatch: Dispatch }

/**
 * Whether a Scheduled-type state starts a new attempt of the run. One that is not a new attempt
 * (Scheduled again, or Late) belongs to the attempt already dispatched, if one is under way. A retry
 * (AwaitingRetry) or a resumption is always a new attempt. The same state again (a duplicate
 * webhook) is left to the idempotency key.
 */
export function judgeAttempt (flowRun: FlowRun, latest: Dispatch | null): Attempt {
  if (NEW_ATTEMPT_STATES.has(flowRun.state?.name ?? '')) return { kind: 'new' }
  if (latest === null || FINAL_STATES.includes(latest.state)) return { kind: 'new' }
  if (latest.key === dispatchKey(flowRun)) return { kind: 'new' }
  if (latest.state !== 'received' && latest.state !== 'deferred') return { kind: 'current', dispatch: latest }
  return { kind: 'supersede', dispatch: latest }
}

/**
 * Whether a waiting dispatch (received or deferred) is still the run's to launch when it is driven
 * (a timer fired, reconcile came for it, a webhook's drive began). Gone from Scheduled-type states
 * (cancelled, taken by another party), rescheduled to a later time, or a new attempt (a retry), the
 * run has moved on. A restatement that is due now (Late, or Scheduled again) is the same attempt,
 * and still to launch; so is a run Pending under this dispatch's own proposal.
 */
export function stillToLaunch (dispatch: Dispatch, flowRun: FlowRun, now: Date, prefetchSeconds: number): { go: true } | { go: false, why: string } {
  const state = flowRun.state
  // A proposal of this dispatch that Prefect applied but whose reply was lost: the claim is ours.
  if (isOwnPending(flowRun, dispatch)) return { go: true }
  if (state?.type !== 'SCHEDULED') return { go: false, why: `it is ${state?.name ?? 'stateless'} now` }
  if (dispatchKey(flowRun) === dispatch.key) return { go: true }
  if (NEW_ATTEMPT_STATES.has(state.name)) return { go: false, why: `it entered ${state.name} (state ${state.id}), a new attempt` }
  const until = deferUntil(flowRun, now, prefetchSeconds)
  if (until !== null) return { go: false, why: `it was rescheduled to ${until.toISOString()} (state ${state.id})` }
  return { go: true }
}

export type PendingReply =
  | { kind: 'accepted' }
  | { kind: 'wait', seconds: number }
  /** ABORT or REJECT: either another party owns the run, or an earlier proposal of ours was applied. */
  | { kind: 'refused' }

export function judgePendingReply (result: OrchestrationResult): PendingReply {
  switch (result.status) {
    case 'ACCEPT': return { kind: 'accepted' }
    case 'WAIT': return { kind: 'wait', seconds: Math.max(1, result.details.delay_seconds ?? 5) }
    default: return { kind: 'refused' }
  }
}

/** The message of the Pending state a dispatch proposes: how a later attempt recognises it. */
export function pendingMessage (dispatch: Pick<Dispatch, 'id'>): string {
  return `Claimed by pushpool dispatch ${dispatch.id}`
}

/** The run is Pending under a proposal of this dispatch whose reply was lost. */
export function isOwnPending (current: FlowRun | null, dispatch: Pick<Dispatch, 'id'>): boolean {
  return current?.state?.type === 'PENDING' && current.state.message === pendingMessage(dispatch)
}

/**
 * The run ended in Prefect without completing: Failed, Crashed or Cancelled, by its engine, by
 * Prefect's own services (the Cancelling timeout, a zombie detector) or by an operator. Its
 * container may still run, hung, and must not. A run gone from Prefect counts too.
 */
export function endedWithoutCompleting (flowRun: FlowRun | null): boolean {
  return flowRun === null || (isTerminal(flowRun) && flowRun.state?.type !== 'COMPLETED')
}

/**
 * Whether reconcile must read a launched dispatch's execution. A run Prefect holds as Completed
 * needs neither crash detection nor reaping, so its execution is not read (one Cloud Run call saved
 * per run) unless something else needs it: a per-run job that is to be deleted (Cloud Run refuses
 * while an execution runs, so its end must be seen), or a log link the launch did not learn.
 */
export function mustReadExecution (dispatch: Dispatch, flowRun: FlowRun | null, jobMode: JobMode): boolean {
  return !isTerminal(flowRun) || endedWithoutCompleting(flowRun) || dispatch.logUri === null || deletesJob(dispatch, jobMode)
}

/** Per-run jobs are deleted once their run is over, unless the pool keeps them (keep_job). */
export function deletesJob (dispatch: Dispatch, jobMode: JobMode): boolean {
  return jobMode === 'per-run' && !dispatch.keepJob && dispatch.jobName !== null
}

/**
 * A launched dispatch whose execution still runs. No execution outlives its run: one whose run
 * ended without completing is cancelled at once (reaped). A started run asked to cancel gets a
 * grace period (the dispatch's `dueAt`) to do it itself; after it, pushpool cancels the execution.
 */
export function judgeRunning (dispatch: Dispatch, flowRun: FlowRun | null, now: Date): 'wait' | 'enforce-cancel' | 'reap' {
  if (endedWithoutCompleting(flowRun)) return 'reap'
  if (dispatch.dueAt === null || dispatch.dueAt > now.toISOString()) return 'wait'
  return flowRun?.state?.type === 'CANCELLING' ? 'enforce-cancel' : 'wait'
}

export type Closing =
  /** Prefect holds the run as terminal: the record takes its state. */
  | { kind: 'terminal', to: DispatchState }
  | { kind: 'succeeded', detail: string }
  /** The infrastructure ended under a run Prefect does not hold as over: the run is Crashed. */
  | { kind: 'crash', message: string }

/** How to close a launched dispatch whose execution ended (`status`), given the run as Prefect holds it. */
export function judgeEndedExecution (flowRun: FlowRun | null, status: ExecutionStatus, logUri: string | null): Closing {
  if (flowRun !== null && isTerminal(flowRun)) return { kind: 'terminal', to: CLOSED_AS[flowRun.state?.type ?? 'COMPLETED'] ?? 'succeeded' }
  if (flowRun === null) return { kind: 'succeeded', detail: 'execution ended; the flow run no longer exists' }
  if (status.outcome === 'succeeded') return { kind: 'succeeded', detail: 'execution succeeded' }
  return { kind: 'crash', message: crashMessage(status, logUri, null) }
}

/**
 * The Crashed state's message for an execution that ended under its run. With the exit code its
 * container logged, it opens as Prefect's worker words a non-zero exit; then Cloud Run's reason.
 */
export function crashMessage (status: ExecutionStatus, logUri: string | null, exitCode: number | null): string {
  const reason = (status.message ?? 'no reason given').replace(/\.+$/, '')
  const why = status.outcome === 'missing'
    ? 'the Cloud Run execution disappeared'
    : `the Cloud Run execution ${status.outcome === 'cancelled' ? 'was cancelled outside Prefect' : 'failed'}: ${reason}`
  const logs = logUri !== null ? ` Logs: ${logUri}` : ''
  if (exitCode === null || exitCode === 0) return `Flow run infrastructure exited before the run finished: ${why}.${logs}`
  return `${nonZeroExitMessage(exitCode)} ${why.charAt(0).toUpperCase()}${why.slice(1)}.${logs}`
}

/**
 * The timer of a dispatch that waits for a time (deferred or retrying), or null. A wait longer than
 * the prefetch window (a run deferred to its scheduled time) fires `prefetchSeconds` early, as
 * Prefect's worker picks runs up; a shorter one (a limit's recheck) fires at its own time, so it
 * never fires at once and spins. Computed from the record alone, so every instance and every pass
 * arms the same timer for the same wait, and a superseded one's timer can be named to remove it.
 */
export function timerFor (dispatch: Dispatch, prefetchSeconds: number): Timer | null {
  if (dispatch.dueAt === null || (dispatch.state !== 'deferred' && dispatch.state !== 'retrying')) return null
  const due = Date.parse(dispatch.dueAt)
  const early = due - prefetchSeconds * 1000
  return { dispatchId: dispatch.id, dispatchKey: dispatch.key, fireAt: new Date(early > Date.parse(dispatch.updatedAt) ? early : due) }
}

/** How early a timer may fire and still count as its dispatch's: clocks and deliveries are not exact. */
const TIMER_SLACK_MS = 1000

/**
 * Whether a timer firing `now` is the one its dispatch waits for. A dispatch driven before its
 * timer fired (by reconcile, a queue slot, another instance) and put back to wait for a later time
 * has that later time's timer armed; the earlier one is stale and must not drive it, or each early
 * drive would leave one more timer behind, each re-arming itself: a dispatch retried under a
 * quota was driven every second rather than every retry delay. A dispatch that no longer waits for
 * a time has nothing to compare: whether it is drivable decides.
 */
export function timerIsDue (dispatch: Dispatch, now: Date, prefetchSeconds: number): boolean {
  const current = timerFor(dispatch, prefetchSeconds)
  return current === null || current.fireAt.getTime() <= now.getTime() + TIMER_SLACK_MS
}
