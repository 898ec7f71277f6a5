// The dispatch state machine (DESIGN §5). A route hands it a flow run id; it decides, and the
// Prefect, Cloud Run and store adapters act. It never trusts the webhook beyond the flow run id:
// everything it launches is read from Prefect.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Config } from '../config.ts'
import type { PrefectClient } from '../prefect/client.ts'
import type { FlowRun } from '../prefect/types.ts'
import { FINAL_STATES, type Store, type Dispatch, type DispatchState } from '../store/store.ts'
import { LaunchGaveUp, type Launcher } from '../cloudrun/launcher.ts'
import type { IdentityResolver } from '../gcp/credentials.ts'
import type { GoogleClients } from '../gcp/clients.ts'
import { NeverRetry, RetryLater } from '../failures.ts'
import { prepareLaunch } from './prepare.ts'
import { ConcurrencyGate } from './concurrency.ts'
import type { Canceller } from './cancel.ts'
import type { PrefectSnapshots } from './prefect-snapshots.ts'

export interface DispatchEvent {
  flowRunId: string
  /** Prefect's event name, e.g. prefect.flow-run.Scheduled; informational only. */
  event: string | null
  receivedAt: Date
}

export type DispatchOutcome =
  | { status: 'ignored', reason: string, dispatch?: Dispatch }
  | { status: 'duplicate', reason: string, dispatch: Dispatch }
  | { status: 'accepted', dispatch: Dispatch }

export interface DispatcherDeps {
  config: Config
  store: Store
  prefect: PrefectClient
  /** Recent copies of the work pool, its queues and flows, shared by every dispatch. */
  snapshots: PrefectSnapshots
  launcher: Launcher
  identities: IdentityResolver
  google: GoogleClients
  log: Logger
}

/** Delay before a dispatch held back by a concurrency limit is tried again. */
const LIMIT_RECHECK_MS = 5_000
const CRASH_PREFIX = 'Failed to submit flow run to infrastructure: '
/** Scheduled-type states that start a new attempt of a run rather than restate the current one. */
const NEW_ATTEMPT_STATES = new Set(['AwaitingRetry', 'Resuming'])

export class Dispatcher {
  private readonly deps: DispatcherDeps
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly gate: ConcurrencyGate
  private readonly canceller: Canceller

  constructor (deps: DispatcherDeps, canceller: Canceller) {
    this.deps = deps
    this.gate = new ConcurrencyGate(deps.prefect, deps.snapshots)
    this.canceller = canceller
  }

  /** Handles one webhook: record the dispatch under its idempotency key, then drive it. */
  async handle (event: DispatchEvent): Promise<DispatchOutcome> {
    const { config, prefect, store } = this.deps
    const flowRun = await prefect.readFlowRun(event.flowRunId)
    if (flowRun === null) return { status: 'ignored', reason: `flow run ${event.flowRunId} does not exist in Prefect` }
    const pool = flowRun.work_pool_name
    if (pool === null || !config.pools.includes(pool)) {
      return { status: 'ignored', reason: `work pool ${pool ?? '(none)'} is not served by this pushpool (PUSHPOOL_POOLS)` }
    }
    const state = flowRun.state
    if (state?.type === 'CANCELLING') return await this.canceller.onCancelling(flowRun)
    if (state === null || state.type !== 'SCHEDULED') return await this.notDispatchable(flowRun, event)

    const current = await this.currentAttempt(flowRun)
    if (current !== null) return { status: 'duplicate', reason: `this run's current attempt is dispatch ${current.id} (${current.state})`, dispatch: current }

    const due = scheduledTime(flowRun)
    const deferUntil = due !== null && due.getTime() > event.receivedAt.getTime() + config.prefetchSeconds * 1000 ? due : null
    const { dispatch, created } = await store.createDispatch({
      key: `${flowRun.id}:${state.id}`,
      flowRunId: flowRun.id,
      flowRunName: flowRun.name,
      pool,
      deploymentId: flowRun.deployment_id,
      state: deferUntil === null ? 'received' : 'deferred',
      dueAt: deferUntil?.toISOString() ?? null,
      receivedAt: event.receivedAt.toISOString(),
      detail: `${event.event ?? 'webhook'} for ${state.name} state ${state.id}` +
        (deferUntil === null ? '' : `; due at ${deferUntil.toISOString()}`)
    })
    if (!created) return { status: 'duplicate', reason: 'this Scheduled state was dispatched already', dispatch }
    if (deferUntil !== null) return { status: 'accepted', dispatch }
    return { status: 'accepted', dispatch: await this.driveWithin(dispatch, flowRun, config.webhookDeadlineMs) }
  }

  /**
   * A Scheduled-type state that is not a new attempt (Scheduled again, or Late) belongs to the
   * attempt already dispatched, if one is under way: a new dispatch would only race it. A dispatch
   * still waiting to claim is superseded instead, so it cannot launch at a stale time. A retry
   * (AwaitingRetry) or a resumption is always a new attempt.
   */
  private async currentAttempt (flowRun: FlowRun): Promise<Dispatch | null> {
    if (NEW_ATTEMPT_STATES.has(flowRun.state?.name ?? '')) return null
    const latest = await this.deps.store.latestDispatchForFlowRun(flowRun.id)
    if (latest === null || FINAL_STATES.includes(latest.state)) return null
    // The same state again (a duplicate webhook): the idempotency key answers that.
    if (latest.key === `${flowRun.id}:${flowRun.state?.id ?? ''}`) return null
    if (latest.state !== 'received' && latest.state !== 'deferred') return latest
    const superseded = await this.deps.store.transition(latest.id, ['received', 'deferred'], 'skipped', { dueAt: null },
      { detail: `superseded: the run entered ${flowRun.state?.name ?? 'a new'} state ${flowRun.state?.id ?? ''}` })
    return superseded === null ? await this.deps.store.getDispatch(latest.id) : null
  }

  /**
   * The run has left its Scheduled-type state. If the state it left was dispatched here, this is a
   * late duplicate; if it went Pending or Running without us, another party owns it, which the
   * ledger records as `skipped` under the key of that Scheduled state.
   */
  private async notDispatchable (flowRun: FlowRun, event: DispatchEvent): Promise<DispatchOutcome> {
    const { store, prefect } = this.deps
    const stateName = flowRun.state?.name ?? 'stateless'
    const latest = await store.latestDispatchForFlowRun(flowRun.id)
    if (latest !== null && latest.state !== 'skipped') {
      return { status: 'duplicate', reason: `flow run is ${stateName}; it was dispatched already`, dispatch: latest }
    }
    const taken = flowRun.state?.type === 'PENDING' || flowRun.state?.type === 'RUNNING'
    const history = taken ? await prefect.readFlowRunStates(flowRun.id) : []
    const scheduled = history.filter(s => s.type === 'SCHEDULED').at(-1)
    if (scheduled === undefined) return { status: 'ignored', reason: `flow run is ${stateName}, not a Scheduled-type state` }
    const { dispatch, created } = await store.createDispatch({
      key: `${flowRun.id}:${scheduled.id}`,
      flowRunId: flowRun.id,
      flowRunName: flowRun.name,
      pool: flowRun.work_pool_name ?? '',
      deploymentId: flowRun.deployment_id,
      state: 'skipped',
      dueAt: null,
      receivedAt: event.receivedAt.toISOString(),
      detail: `${event.event ?? 'webhook'}: flow run is already ${stateName}; another party owns it`
    })
    if (!created) return { status: 'duplicate', reason: `flow run is ${stateName}; it was dispatched already`, dispatch }
    return { status: 'ignored', reason: `flow run is already ${stateName}; another party owns it`, dispatch }
  }

  /**
   * Drives a dispatch but answers by `deadlineMs` whatever happens, because Prefect gives a
   * webhook 10 s. The drive itself goes on; if this instance dies first, reconcile finishes it.
   */
  private async driveWithin (dispatch: Dispatch, flowRun: FlowRun, deadlineMs: number): Promise<Dispatch> {
    const drive = this.track(this.drive(dispatch, flowRun))
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<null>(resolve => { timer = setTimeout(resolve, deadlineMs, null) })
    try {
      const done = await Promise.race([drive, deadline])
      return done ?? (await this.deps.store.getDispatch(dispatch.id)) ?? dispatch
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Claim → render → launch → report. A `received` or `deferred` dispatch is claimed first (within
   * the pool's concurrency limits); a `retrying` one already owns its run (Pending was accepted)
   * and goes straight to the launch.
   */
  async drive (dispatch: Dispatch, knownFlowRun?: FlowRun): Promise<Dispatch> {
    const log = this.deps.log.child({ dispatch_id: dispatch.id, flow_run_id: dispatch.flowRunId })
    if (dispatch.state === 'retrying') return await this.launch(dispatch, log, knownFlowRun)
    if (dispatch.state === 'claimed') {
      // A claim whose process died before Prefect answered: propose again (idempotent, see proposePending).
      const claimed = await this.proposePending(dispatch, log)
      if (claimed === null || claimed.state !== 'claimed') return claimed ?? dispatch
      return await this.launch(claimed, log, knownFlowRun)
    }
    const flowRun = knownFlowRun ?? await this.deps.prefect.readFlowRun(dispatch.flowRunId)
    if (flowRun === null) {
      return (await this.deps.store.transition(dispatch.id, ['received', 'deferred'], 'skipped', {},
        { detail: 'the flow run no longer exists in Prefect' })) ?? dispatch
    }
    const admission = await this.gate.admit(flowRun, () => this.claim(dispatch, log))
    if (!admission.admitted) {
      log.info({ reason: admission.reason }, 'dispatch deferred')
      return (await this.deps.store.transition(dispatch.id, ['received', 'deferred'], 'deferred',
        { dueAt: new Date(Date.now() + LIMIT_RECHECK_MS).toISOString() }, { detail: `deferred: ${admission.reason}` })) ??
        (await this.deps.store.getDispatch(dispatch.id)) ?? dispatch
    }
    const claimed = admission.value
    if (claimed === null || claimed.state !== 'claimed') return claimed ?? dispatch
    return await this.launch(claimed, log, flowRun)
  }

  /** Waits for in-flight drives, up to `timeoutMs`; what is left is reconcile's to finish. */
  async drain (timeoutMs: number): Promise<number> {
    const pending = [...this.inFlight]
    if (pending.length === 0) return 0
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.allSettled(pending),
      new Promise(resolve => { timer = setTimeout(resolve, timeoutMs) })
    ])
    clearTimeout(timer)
    return this.inFlight.size
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise)
    const forget = (): void => { this.inFlight.delete(promise) }
    promise.then(forget, forget)
    return promise
  }

  /** Moves a `received` or `deferred` dispatch to `claimed`, then proposes Pending. */
  private async claim (dispatch: Dispatch, log: Logger): Promise<Dispatch | null> {
    // The compare-and-set makes this instance the only driver of the dispatch.
    // Nothing has been launched for this dispatch yet: its first launch needs no look.
    const mine = await this.deps.store.transition(dispatch.id, ['received', 'deferred'], 'claimed', { dueAt: null, launchUncertain: false },
      { detail: 'proposing Pending to Prefect' })
    if (mine === null) return await this.deps.store.getDispatch(dispatch.id)
    return await this.proposePending(mine, log)
  }

  /**
   * Proposes Pending without force, so Prefect arbitrates between pushpool and any other claimant.
   * The state's message names the dispatch: a proposal whose reply was lost (a timeout) may still
   * have been applied, and the next attempt, answered ABORT, recognises the Pending as its own.
   */
  private async proposePending (mine: Dispatch, log: Logger): Promise<Dispatch | null> {
    const { store, prefect, config } = this.deps
    let result
    try {
      result = await prefect.setFlowRunState(mine.flowRunId, { type: 'PENDING', name: 'Pending', message: pendingMessage(mine) }, false)
    } catch (err) {
      if (!(err instanceof RetryLater)) return await this.failBeforeLaunch(mine, err, log, ['claimed'])
      // Not `retrying`: that state means Pending was accepted. The run is claimed again later.
      log.warn({ err: err.message }, 'could not propose Pending; the claim will be retried')
      return await store.transition(mine.id, ['claimed'], 'deferred',
        { dueAt: new Date(Date.now() + config.retryDelaySeconds * 1000).toISOString() },
        { detail: `could not propose Pending: ${err.message}` })
    }
    const reply = { status: result.status, state: result.state?.type ?? null, details: result.details }
    switch (result.status) {
      case 'ACCEPT':
        log.debug({ reply }, 'Prefect accepted Pending')
        return await store.note(mine.id, 'pending_accepted', {}, { detail: 'Prefect accepted Pending', reply })
      case 'WAIT': {
        const delay = Math.max(1, result.details.delay_seconds ?? 5)
        return await store.transition(mine.id, ['claimed'], 'deferred',
          { dueAt: new Date(Date.now() + delay * 1000).toISOString() },
          { detail: `Prefect asked to wait ${delay} s: ${result.details.reason ?? ''}`.trim(), reply })
      }
      default: {
        const current = await prefect.readFlowRun(mine.flowRunId)
        if (current?.state?.type === 'PENDING' && current.state.message === pendingMessage(mine)) {
          return await store.note(mine.id, 'pending_accepted', {},
            { detail: 'an earlier Pending proposal of this dispatch was applied', reply })
        }
        log.info({ reply }, 'another party owns the flow run')
        return await store.transition(mine.id, ['claimed'], 'skipped', {},
          { detail: `Prefect answered ${result.status}: ${result.details.reason ?? 'another party owns the flow run'}`, reply })
      }
    }
  }

  private async launch (dispatch: Dispatch, log: Logger, knownFlowRun?: FlowRun): Promise<Dispatch> {
    const { store, prefect, launcher, config } = this.deps
    let prepared
    try {
      prepared = await prepareLaunch(this.deps, dispatch, knownFlowRun)
    } catch (err) {
      return await this.failBeforeLaunch(dispatch, err, log, ['claimed', 'retrying'])
    }
    for (const warning of prepared.config.warnings) log.warn({ warning }, 'job template warning')
    const launching = await store.transition(dispatch.id, ['claimed', 'retrying'], 'launching', {
      project: prepared.project,
      region: prepared.region,
      jobName: prepared.plan.jobName,
      jobSpec: prepared.redactedJob,
      keepJob: prepared.config.keepJob
    }, {
      detail: `launching ${prepared.plan.mode === 'reuse' ? 'on shared job' : 'per-run job'} ${prepared.plan.jobName}`,
      reply: prepared.config.warnings.length > 0 ? { warnings: prepared.config.warnings } : undefined
    })
    if (launching === null) return (await store.getDispatch(dispatch.id)) ?? dispatch

    let result
    let attempts = launching.attempts
    try {
      result = await launcher.launch(prepared.clients, prepared.plan, {
        maxAttempts: config.launchAttempts,
        // An earlier launch may have created an execution whose reply was lost: look before running.
        // The flag is read from the row this launch's compare-and-set returned, so no other launch
        // can have changed it since. A first launch has it cleared by its claim.
        checkFirst: launching.launchUncertain,
        onAttemptFailed: async failure => {
          attempts++
          log.warn({ attempt: failure.attempt, grpc_code: failure.grpcCode }, 'launch attempt failed')
          await store.note(dispatch.id, 'attempt_failed', { attempts }, { detail: failure.error, reply: { grpc_code: failure.grpcCode } })
        }
      })
    } catch (err) {
      // Whether the next launch must look for an execution first: an error from anywhere but the
      // launcher's own verdict keeps the look, as does a launch that may have been applied.
      const launchUncertain = !(err instanceof LaunchGaveUp) || err.executionPossible
      return await this.failBeforeLaunch(launching, err, log, ['launching'], { launchUncertain })
    }
    log.info({ execution: result.executionName, adopted: result.adopted }, 'execution launched')

    let pidNote = 'infrastructure_pid set'
    try {
      await prefect.setInfrastructurePid(dispatch.flowRunId, result.executionName)
    } catch (err) {
      // The execution exists: the dispatch is launched whatever Prefect says now. Cancellation
      // by the engine still works; only Prefect's own infrastructure kill would miss it.
      pidNote = `could not set infrastructure_pid: ${(err as Error).message}`
      log.warn({ err }, 'could not set infrastructure_pid')
    }
    const launched = await store.transition(dispatch.id, ['launching'], 'launched', {
      executionName: result.executionName,
      ...(result.logUri !== null ? { logUri: result.logUri } : {}),
      launchedAt: new Date().toISOString(),
      attempts: launching.attempts + result.attempts,
      error: null
    }, { detail: `${result.adopted ? 'adopted execution from an earlier attempt' : 'execution started'}; ${pidNote}`, reply: result.reply })
    return launched ?? dispatch
  }

  /**
   * A failure before an execution exists. Retryable ones wait for reconcile; permanent ones crash
   * the flow run with a message that names the cause, as Prefect's worker does.
   */
  private async failBeforeLaunch (dispatch: Dispatch, err: unknown, log: Logger, from: DispatchState[],
    launch: { launchUncertain?: boolean } = {}): Promise<Dispatch> {
    const { store, prefect } = this.deps
    if (err instanceof RetryLater) {
      log.warn({ err: err.message }, 'dispatch will be retried by reconcile')
      return (await store.transition(dispatch.id, from, 'retrying',
        { dueAt: new Date(Date.now() + this.deps.config.retryDelaySeconds * 1000).toISOString(), error: err.message, ...launch },
        { detail: err.message })) ?? dispatch
    }
    const message = err instanceof NeverRetry ? err.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`
    if (!(err instanceof NeverRetry)) log.error({ err }, 'unexpected dispatch error')
    else log.warn({ reason: message }, 'dispatch failed permanently; crashing the flow run')
    let reply: unknown = null
    try {
      const result = await prefect.setFlowRunState(dispatch.flowRunId, { type: 'CRASHED', name: 'Crashed', message: CRASH_PREFIX + message }, false)
      reply = { status: result.status, state: result.state?.type ?? null, details: result.details }
    } catch (crashErr) {
      reply = { error: (crashErr as Error).message }
      log.error({ err: crashErr }, 'could not report Crashed to Prefect')
    }
    return (await store.transition(dispatch.id, from, 'submit_failed', { error: message },
      { detail: CRASH_PREFIX + message, reply })) ?? dispatch
  }

  /** Admin redrive: drive a dispatch that is waiting or stuck, now rather than at reconcile. */
  async redrive (dispatch: Dispatch): Promise<Dispatch> {
    if (dispatch.state === 'launching') {
      // A launch whose process died mid-way: hand it to the retry path, which first looks for an
      // execution the lost attempt may have created.
      const moved = await this.deps.store.transition(dispatch.id, ['launching'], 'retrying', { launchUncertain: true },
        { detail: 'redriven: launch was interrupted' })
      if (moved === null) return (await this.deps.store.getDispatch(dispatch.id)) ?? dispatch
      return await this.track(this.drive(moved))
    }
    return await this.track(this.drive(dispatch))
  }
}

/** The message of the Pending state a dispatch proposes: how a later attempt recognises it. */
function pendingMessage (dispatch: Dispatch): string {
  return `Claimed by pushpool dispatch ${dispatch.id}`
}

/** When a Scheduled-type run is due: its state's scheduled time, else the run's next start time. */
function scheduledTime (flowRun: FlowRun): Date | null {
  const when = flowRun.state?.state_details?.scheduled_time ?? flowRun.next_scheduled_start_time ?? null
  return when === null ? null : new Date(when)
}
