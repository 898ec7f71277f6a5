// The dispatch state machine (docs/architecture.md). A route hands it a flow run id; it decides
// (decisions.ts), and the Prefect, Cloud Run and store adapters act. It never trusts the webhook
// beyond the flow run id: everything it launches is read from Prefect.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { FlowRun } from '../prefect/types.ts'
import type { Dispatch } from '../store/store.ts'
import { DRIVABLE_STATES } from '../store/transitions.ts'
import { NeverRetry, RetryLater } from '../failures.ts'
import { prepareLaunch } from './prepare.ts'
import { ConcurrencyGate } from './concurrency.ts'
import type { Canceller } from './cancel.ts'
import type { DispatchDeps, DispatchEvent, DispatchOutcome } from './types.ts'
import {
  CRASH_PREFIX, deferUntil, dispatchKey, isOwnPending, judgeAttempt, judgePendingReply, pendingMessage, triage
} from './decisions.ts'

/** Delay before a dispatch held back by a concurrency limit is tried again. */
const LIMIT_RECHECK_MS = 5_000

export type RedriveOutcome = { kind: 'driven', dispatch: Dispatch } | { kind: 'not-drivable', dispatch: Dispatch }

export class Dispatcher {
  private readonly deps: DispatchDeps
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly gate: ConcurrencyGate
  private readonly canceller: Canceller

  constructor (deps: DispatchDeps, canceller: Canceller) {
    this.deps = deps
    this.gate = new ConcurrencyGate(deps.prefect, deps.snapshots)
    this.canceller = canceller
  }

  /** Handles one event: record the dispatch under its idempotency key, then drive it. */
  async handle (event: DispatchEvent): Promise<DispatchOutcome> {
    const { config, prefect, store } = this.deps
    const flowRun = await prefect.readFlowRun(event.flowRunId)
    const verdict = triage(event.flowRunId, flowRun, config.pools)
    if (verdict.kind === 'ignore') return { status: 'ignored', reason: verdict.reason }
    const run = flowRun as FlowRun
    if (verdict.kind === 'cancelling') return await this.canceller.onCancelling(run)
    if (verdict.kind === 'not-dispatchable') return await this.notDispatchable(run, event)

    const current = await this.currentAttempt(run)
    if (current !== null) return { status: 'duplicate', reason: `this run's current attempt is dispatch ${current.id} (${current.state})`, dispatch: current }

    const state = run.state!
    const until = deferUntil(run, event.receivedAt, config.prefetchSeconds)
    const { dispatch, created } = await store.createDispatch({
      key: dispatchKey(run),
      flowRunId: run.id,
      flowRunName: run.name,
      pool: run.work_pool_name ?? '',
      deploymentId: run.deployment_id,
      state: until === null ? 'received' : 'deferred',
      dueAt: until?.toISOString() ?? null,
      receivedAt: event.receivedAt.toISOString(),
      detail: `${event.event ?? 'webhook'} for ${state.name} state ${state.id}` +
        (until === null ? '' : `; due at ${until.toISOString()}`)
    })
    if (!created) return { status: 'duplicate', reason: 'this Scheduled state was dispatched already', dispatch }
    if (until !== null) return { status: 'accepted', dispatch }
    return { status: 'accepted', dispatch: await this.driveWithin(dispatch, run, config.webhookDeadlineMs) }
  }

  /** The dispatch of the run's attempt under way, if any; a waiting one of an older state is superseded first. */
  private async currentAttempt (flowRun: FlowRun): Promise<Dispatch | null> {
    const { store } = this.deps
    const attempt = judgeAttempt(flowRun, await store.latestDispatchForFlowRun(flowRun.id))
    if (attempt.kind === 'new') return null
    if (attempt.kind === 'current') return attempt.dispatch
    const superseded = await store.transition(attempt.dispatch.id, 'supersede', { dueAt: null },
      { detail: `superseded: the run entered ${flowRun.state?.name ?? 'a new'} state ${flowRun.state?.id ?? ''}` })
    // Another party moved it first: whatever it became is the attempt under way.
    return superseded === null ? await store.getDispatch(attempt.dispatch.id) : null
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
      return (await this.deps.store.transition(dispatch.id, 'supersede', {},
        { detail: 'the flow run no longer exists in Prefect' })) ?? dispatch
    }
    const admission = await this.gate.admit(flowRun, () => this.claim(dispatch, log))
    if (!admission.admitted) {
      log.info({ reason: admission.reason }, 'dispatch deferred')
      return (await this.deps.store.transition(dispatch.id, 'hold',
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
    const mine = await this.deps.store.transition(dispatch.id, 'claim', { dueAt: null, executionMayExist: false },
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
      if (!(err instanceof RetryLater)) return await this.failBeforeLaunch(mine, err, log)
      // Not `retrying`: that state means Pending was accepted. The run is claimed again later.
      log.warn({ err: err.message }, 'could not propose Pending; the claim will be retried')
      return await store.transition(mine.id, 'postponeClaim',
        { dueAt: new Date(Date.now() + config.retryDelaySeconds * 1000).toISOString() },
        { detail: `could not propose Pending: ${err.message}` })
    }
    const reply = { status: result.status, state: result.state?.type ?? null, details: result.details }
    const verdict = judgePendingReply(result)
    switch (verdict.kind) {
      case 'accepted':
        log.debug({ reply }, 'Prefect accepted Pending')
        return await store.note(mine.id, 'pending_accepted', {}, { detail: 'Prefect accepted Pending', reply })
      case 'wait':
        return await store.transition(mine.id, 'postponeClaim',
          { dueAt: new Date(Date.now() + verdict.seconds * 1000).toISOString() },
          { detail: `Prefect asked to wait ${verdict.seconds} s: ${result.details.reason ?? ''}`.trim(), reply })
      case 'refused': {
        if (isOwnPending(await prefect.readFlowRun(mine.flowRunId), mine)) {
          return await store.note(mine.id, 'pending_accepted', {},
            { detail: 'an earlier Pending proposal of this dispatch was applied', reply })
        }
        log.info({ reply }, 'another party owns the flow run')
        return await store.transition(mine.id, 'yield', {},
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
      return await this.failBeforeLaunch(dispatch, err, log)
    }
    for (const warning of prepared.config.warnings) log.warn({ warning }, 'job template warning')
    const launching = await store.transition(dispatch.id, 'launch', {
      project: prepared.project,
      region: prepared.region,
      jobName: prepared.plan.jobName,
      jobSpec: prepared.redactedJob,
      keepJob: prepared.config.keepJob,
      gcpIdentity: prepared.identity
    }, {
      detail: `launching ${prepared.plan.mode === 'reuse' ? 'on shared job' : 'per-run job'} ${prepared.plan.jobName}`,
      reply: prepared.config.warnings.length > 0 ? { warnings: prepared.config.warnings } : undefined
    })
    if (launching === null) return (await store.getDispatch(dispatch.id)) ?? dispatch

    let attempts = launching.attempts
    const outcome = await launcher.launch(prepared.clients, prepared.plan, {
      maxAttempts: config.launchAttempts,
      // Read from the row this launch's compare-and-set returned, so no other launch can have
      // changed it since. A first launch has it cleared by its claim.
      executionMayExist: launching.executionMayExist,
      onAttemptFailed: async failure => {
        attempts++
        log.warn({ attempt: failure.attempt, rpc_status: failure.status }, 'launch attempt failed')
        await store.note(dispatch.id, 'attempt_failed', { attempts }, { detail: failure.error, reply: { rpc_status: failure.status } })
      }
    })
    if (outcome.kind === 'refused') return await this.failBeforeLaunch(launching, outcome.error, log)
    if (outcome.kind === 'unavailable') {
      return await this.failBeforeLaunch(launching, outcome.error, log, { executionMayExist: outcome.executionMayExist })
    }
    log.info({ execution: outcome.executionName, adopted: outcome.adopted }, 'execution launched')

    let pidNote = 'infrastructure_pid set'
    try {
      await prefect.setInfrastructurePid(dispatch.flowRunId, outcome.executionName)
    } catch (err) {
      // The execution exists: the dispatch is launched whatever Prefect says now. Cancellation
      // by the engine still works; only Prefect's own infrastructure kill would miss it.
      pidNote = `could not set infrastructure_pid: ${(err as Error).message}`
      log.warn({ err }, 'could not set infrastructure_pid')
    }
    const launched = await store.transition(dispatch.id, 'launched', {
      executionName: outcome.executionName,
      ...(outcome.logUri !== null ? { logUri: outcome.logUri } : {}),
      launchedAt: new Date().toISOString(),
      attempts: launching.attempts + outcome.attempts,
      error: null
    }, { detail: `${outcome.adopted ? 'adopted execution from an earlier attempt' : 'execution started'}; ${pidNote}`, reply: outcome.reply })
    return launched ?? dispatch
  }

  /**
   * A failure before an execution exists. Retryable ones wait for reconcile; permanent ones crash
   * the flow run with a message that names the cause, as Prefect's worker does. `launch` says
   * whether the failed launch may have left an execution; an error from anywhere but the launcher
   * keeps what the record says. The move is made only from the state this drive left the record
   * in, so a record another drive has moved on since is left to it.
   */
  private async failBeforeLaunch (dispatch: Dispatch, err: unknown, log: Logger,
    launch: { executionMayExist?: boolean } = {}): Promise<Dispatch> {
    const { store, prefect } = this.deps
    if (err instanceof RetryLater) {
      log.warn({ err: err.message }, 'dispatch will be retried by reconcile')
      return (await store.transition(dispatch.id, 'retry',
        { dueAt: new Date(Date.now() + this.deps.config.retryDelaySeconds * 1000).toISOString(), error: err.message, ...launch },
        { detail: err.message }, { from: [dispatch.state] })) ?? dispatch
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
    return (await store.transition(dispatch.id, 'submitFailed', { error: message },
      { detail: CRASH_PREFIX + message, reply }, { from: [dispatch.state] })) ?? dispatch
  }

  /** Admin redrive: drive a dispatch that is waiting or stuck, now rather than at reconcile. */
  async redrive (dispatch: Dispatch): Promise<RedriveOutcome> {
    if (!DRIVABLE_STATES.includes(dispatch.state)) return { kind: 'not-drivable', dispatch }
    let moved: Dispatch | null = dispatch
    if (dispatch.state === 'launching') {
      // A launch whose process died mid-way: hand it to the retry path, which first looks for an
      // execution the lost attempt may have created.
      moved = await this.deps.store.transition(dispatch.id, 'retry', { executionMayExist: true },
        { detail: 'redriven: launch was interrupted' })
      if (moved === null) return { kind: 'driven', dispatch: (await this.deps.store.getDispatch(dispatch.id)) ?? dispatch }
    }
    return { kind: 'driven', dispatch: await this.track(this.drive(moved)) }
  }
}
