// Cancellation (docs/architecture.md). With no worker watching, pushpool owns what Prefect's worker
// did on a Cancelling run: a run that never started has its execution cancelled and is marked
// Cancelled; a started run cancels itself from inside the container, and pushpool only cancels the
// execution if it is still running after a grace period (enforced by reconcile).
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { FlowRun } from '../prefect/types.ts'
import type { PrefectClient } from '../prefect/client.ts'
import type { Store, Dispatch } from '../store/store.ts'
import { UNLAUNCHED_STATES } from '../store/transitions.ts'
import type { DispatchClients } from './dispatch-clients.ts'
import type { DispatchOutcome } from './types.ts'
import { isTerminal } from './decisions.ts'
import { cancelExecution } from '../cloudrun/executions.ts'

export interface CancellerDeps {
  store: Store
  prefect: PrefectClient
  clients: DispatchClients
  graceSeconds: number
  log: Logger
}

export type OperatorCancel =
  | { kind: 'not-found' }
  /** The run has already ended (or is gone from Prefect): there is nothing to cancel. */
  | { kind: 'not-cancellable' }
  | { kind: 'cancelling', dispatch: Dispatch }

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
    // Prefect is told first, so the engine in a started container sees Cancelling and stops itself.
    const result = await prefect.setFlowRunState(flowRun.id, { type: 'CANCELLING', name: 'Cancelling', message: 'Cancelled through pushpool\'s admin API' }, false)
    const outcome = await this.onCancelling({ ...flowRun, state: result.state ?? flowRun.state })
    const latest = outcome.dispatch ?? await store.getDispatch(dispatch.id)
    return { kind: 'cancelling', dispatch: latest ?? dispatch }
  }

  /** A flow run entered Cancelling (webhook, admin cancel, or reconcile noticed it). */
  async onCancelling (flowRun: FlowRun): Promise<DispatchOutcome> {
    const { store } = this.deps
    const dispatch = await store.latestDispatchForFlowRun(flowRun.id)
    if (dispatch !== null && UNLAUNCHED_STATES.includes(dispatch.state)) {
      // Not launched yet: make sure it never is.
      await store.transition(dispatch.id, 'cancelUnlaunched', { dueAt: null }, { detail: 'flow run was cancelled before launch' })
    }
    if (flowRun.start_time !== null && dispatch?.state === 'launched') {
      const due = new Date(Date.now() + this.deps.graceSeconds * 1000).toISOString()
      const noted = await store.note(dispatch.id, 'cancel_requested', { dueAt: due },
        { detail: `flow run is Cancelling; the engine cancels itself, and the execution is cancelled at ${due} if still running` })
      return { status: 'accepted', dispatch: noted ?? dispatch }
    }
    const finished = await this.cancelNow(flowRun, dispatch, 'Flow run cancelled by pushpool before it started.')
    return finished === null
      ? { status: 'ignored', reason: 'flow run is Cancelling and has no execution; it was marked Cancelled' }
      : { status: 'accepted', dispatch: finished }
  }

  /** Reconcile's half: the grace period of a started run is over and its execution still runs. */
  async enforce (flowRun: FlowRun, dispatch: Dispatch): Promise<Dispatch | null> {
    return await this.cancelNow(flowRun, dispatch,
      `Flow run cancelled by pushpool: the execution was still running ${this.deps.graceSeconds} s after cancellation was requested.`)
  }

  private async cancelNow (flowRun: FlowRun, dispatch: Dispatch | null, message: string): Promise<Dispatch | null> {
    const { store, prefect, clients, log } = this.deps
    const execution = dispatch?.executionName ?? null
    let cancelReply: unknown = null
    if (dispatch !== null && execution !== null) {
      cancelReply = { execution, result: await cancelExecution(await clients.forDispatch(dispatch), execution) }
    }
    const result = await prefect.setFlowRunState(flowRun.id, { type: 'CANCELLED', name: 'Cancelled', message }, true)
    log.info({ flow_run_id: flowRun.id, dispatch_id: dispatch?.id, execution }, 'flow run cancelled')
    if (dispatch === null) return null
    // A dispatch still launching is left to finish: its engine will find the run Cancelled and exit,
    // and reconcile then closes the record.
    return await store.transition(dispatch.id, 'cancel', { dueAt: null },
      { detail: message, reply: { cancel: cancelReply, prefect: { status: result.status, state: result.state?.type ?? null } } }) ??
      await store.getDispatch(dispatch.id)
  }
}
