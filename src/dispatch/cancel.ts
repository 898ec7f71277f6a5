// Cancellation (docs/architecture.md, "After launch"). With no worker watching, pushpool owns what
// Prefect's worker did on a Cancelling run: a run that never started is marked Cancelled and its
// execution cancelled; a started run cancels itself from inside the container, and pushpool only
// cancels the execution if it is still running after a grace period (enforced by reconcile).
//
// Every path (the admin route, a Cancelling webhook, reconcile) first marks the dispatch's
// cancellation as requested, once (store.requestCancel): of concurrent requests one acts and the
// others answer as a duplicate would, so a run gets one forced Cancelled state and one
// CancelExecution however many requests arrive.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { FlowRun } from '../prefect/types.ts'
import type { PrefectClient } from '../prefect/client.ts'
import type { Store, Dispatch } from '../store/store.ts'
import { FINAL_STATES, UNLAUNCHED_STATES } from '../store/transitions.ts'
import type { DispatchClients } from './dispatch-clients.ts'
import type { DispatchActivity } from './activity.ts'
import type { DispatchOutcome } from './types.ts'
import type { Ownership } from './ownership.ts'
import { isTerminal } from './decisions.ts'
import { cancelExecution } from '../cloudrun/executions.ts'

export interface CancellerDeps {
  store: Store
  prefect: PrefectClient
  clients: DispatchClients
  graceSeconds: number
  activity: DispatchActivity
  log: Logger
}

export type OperatorCancel =
  | { kind: 'not-found' }
  /** The run has already ended (or is gone from Prefect): there is nothing to cancel. */
  | { kind: 'not-cancellable' }
  /** Cancelling: by this request, or by an earlier one still under way (`duplicate`). */
  | { kind: 'cancelling', dispatch: Dispatch, duplicate: boolean }

const NOT_STARTED = 'Flow run cancelled by pushpool before it started.'

export class Canceller {
  private readonly deps: CancellerDeps

  constructor (deps: CancellerDeps) {
    this.deps = deps
  }

  /** An operator asked to cancel a dispatch's run (the admin API). */
  async cancelByOperator (dispatchId: string): Promise<OperatorCancel> {
    const { store, prefect } = this.deps
    const dispatch = await store.getDispatch(dispatchId)
    if (dispatch === null) return { kind: 'not-found' }
    const flowRun = await prefect.readFlowRun(dispatch.flowRunId)
    if (flowRun === null || flowRun.state === null || isTerminal(flowRun)) return { kind: 'not-cancellable' }
    const marked = await this.mark(dispatch)
    if (marked === null) return { kind: 'cancelling', dispatch: (await store.getDispatch(dispatch.id)) ?? dispatch, duplicate: true }
    // Prefect is told first, so the engine in a started container sees Cancelling and stops itself.
    const result = await prefect.setFlowRunState(flowRun.id, { type: 'CANCELLING', name: 'Cancelling', message: 'Cancelled through pushpool\'s admin API' }, false)
    const outcome = await this.act({ ...flowRun, state: result.state ?? flowRun.state }, marked.dispatch)
    const latest = outcome.dispatch ?? await store.getDispatch(dispatch.id)
    return { kind: 'cancelling', dispatch: latest ?? dispatch, duplicate: false }
  }

  /** A flow run entered Cancelling (a webhook, or reconcile noticed it). */
  async onCancelling (flowRun: FlowRun): Promise<DispatchOutcome> {
    const latest = await this.deps.store.latestDispatchForFlowRun(flowRun.id)
    const marked = latest === null ? { dispatch: null } : await this.mark(latest)
    if (marked === null) {
      return { status: 'duplicate', reason: 'cancellation of this flow run was requested already', dispatch: latest as Dispatch }
    }
    return await this.act(flowRun, marked.dispatch)
  }

  /** Reconcile's half: the grace period of a started run is over and its execution still runs. */
  async enforce (own: Ownership, flowRun: FlowRun, dispatch: Dispatch): Promise<Dispatch | null> {
    return await this.cancelNow(flowRun, dispatch,
      `Flow run cancelled by pushpool: the execution was still running ${this.deps.graceSeconds} s after cancellation was requested.`, own)
  }

  /**
   * The dispatch this request may act for, marked: null when an earlier request did (a duplicate).
   * A dispatch already final is nobody's to mark; the request acts on the run alone.
   */
  private async mark (dispatch: Dispatch): Promise<{ dispatch: Dispatch | null } | null> {
    if (FINAL_STATES.includes(dispatch.state)) return { dispatch: null }
    const marked = await this.deps.store.requestCancel(dispatch.id)
    return marked === null ? null : { dispatch: marked }
  }

  private async act (flowRun: FlowRun, dispatch: Dispatch | null): Promise<DispatchOutcome> {
    const { store } = this.deps
    if (dispatch !== null && UNLAUNCHED_STATES.includes(dispatch.state)) {
      // Not launched yet: make sure it never is (a drive under way finds the state moved, and stops).
      await store.transition(dispatch.id, 'cancelUnlaunched', { dueAt: null }, { detail: 'flow run was cancelled before launch' })
    }
    if (flowRun.start_time !== null && dispatch?.state === 'launched') {
      const due = new Date(Date.now() + this.deps.graceSeconds * 1000).toISOString()
      const noted = await store.note(dispatch.id, 'cancel_requested', { dueAt: due },
        { detail: `flow run is Cancelling; the engine cancels itself, and the execution is cancelled at ${due} if still running` })
      return { status: 'accepted', dispatch: noted ?? dispatch }
    }
    const finished = await this.cancelNow(flowRun, dispatch, NOT_STARTED)
    return finished === null
      ? { status: 'ignored', reason: 'flow run is Cancelling and has no execution; it was marked Cancelled' }
      : { status: 'accepted', dispatch: finished }
  }

  /**
   * Marks the run Cancelled, then cancels its execution. Prefect first: an engine starting in the
   * container finds the run over and exits, and reconcile, seeing the run Cancelled, never takes
   * the cancelled execution for a crash.
   */
  private async cancelNow (flowRun: FlowRun, dispatch: Dispatch | null, message: string, own?: Ownership): Promise<Dispatch | null> {
    const { store, prefect, clients, log } = this.deps
    const execution = dispatch?.executionName ?? null
    if (dispatch === null && !(await this.stillCancelling(flowRun.id))) return null
    await own?.hold(prefect.callDeadlineMs)
    const result = await prefect.setFlowRunState(flowRun.id, { type: 'CANCELLED', name: 'Cancelled', message }, true)
    let cancelReply: unknown = null
    if (dispatch !== null && execution !== null) {
      cancelReply = { execution, result: await cancelExecution(await clients.forDispatch(dispatch), execution) }
    }
    log.info({ flow_run_id: flowRun.id, dispatch_id: dispatch?.id, execution }, 'flow run cancelled')
    if (dispatch === null) return null
    // A dispatch still launching is left to finish: its engine will find the run Cancelled and exit,
    // and reconcile then closes the record (reaping the execution if it still runs).
    const event = { detail: message, reply: { cancel: cancelReply, prefect: { status: result.status, state: result.state?.type ?? null } } }
    const moved = own === undefined
      ? await store.transition(dispatch.id, 'cancel', { dueAt: null }, event)
      : await own.transition('cancel', { dueAt: null }, event)
    if (moved !== null) this.deps.activity.cancelled(moved, message, execution)
    return moved ?? await store.getDispatch(dispatch.id)
  }

  /**
   * Without a dispatch to mark, a run is forced Cancelled only while it is still Cancelling: a
   * second delivery of its Cancelling event finds it Cancelled already, and forces nothing.
   */
  private async stillCancelling (flowRunId: string): Promise<boolean> {
    return (await this.deps.prefect.readFlowRun(flowRunId))?.state?.type === 'CANCELLING'
  }
}
