// The dispatch state machine (docs/architecture.md). A route hands it a flow run id; it decides
// (decisions.ts), and the Prefect, Cloud Run and store adapters act. It never trusts the webhook
// beyond the flow run id: everything it launches is read from Prefect.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { FlowRun } from '../prefect/types.ts'
import type { Dispatch, NewDispatch } from '../store/store.ts'
import { DRIVABLE_STATES } from '../store/transitions.ts'
import { NeverRetry, RetryLater } from '../failures.ts'
import { CLOUD_RUN_CALL_MS, CREATE_JOB_MS, type LaunchCall } from '../cloudrun/launcher.ts'
import { DeploymentGone, prepareLaunch } from './prepare.ts'
import { ConcurrencyGate } from './concurrency.ts'
import type { Canceller } from './cancel.ts'
import { LeaseLost, Ownership, type StepDeadlines } from './ownership.ts'
import type { DispatchDeps, DispatchEvent, DispatchOutcome } from './types.ts'
import {
  CRASH_PREFIX, deferUntil, dispatchKey, isOwnPending, judgeAttempt, judgePendingReply, pendingMessage, scheduledTime, stillToLaunch, timerFor, timerIsDue, triage
} from './decisions.ts'

/** Delay before a dispatch held back by a concurrency limit is tried again. */
const LIMIT_RECHECK_MS = 5_000
/**
 * How long a dispatch over the bound of drives in flight waits at most: its timer fires then (less
 * the prefetch) should no slot of this process have freed by then.
 */
const OVERFLOW_WAIT_MS = 30_000

export type FireOutcome =
  | { kind: 'driven', dispatch: Dispatch }
  /** The dispatch no longer waits (launched, superseded, cancelled, …), or waits for a later time: the timer was stale. */
  | { kind: 'moved-on', dispatch: Dispatch }
  /** Another drive owns it now. */
  | { kind: 'busy', dispatch: Dispatch }
  /** This process has as many drives in flight as it may; it is queued here, and driven when one ends. */
  | { kind: 'saturated', dispatch: Dispatch }
  /** No such dispatch (pruned, or another deployment's ledger). */
  | { kind: 'gone' }

export type RedriveOutcome =
  | { kind: 'driven', dispatch: Dispatch }
  | { kind: 'not-drivable', dispatch: Dispatch }
  /** Another drive owns the dispatch right now. */
  | { kind: 'busy', dispatch: Dispatch }

export class Dispatcher {
  private readonly deps: DispatchDeps
  private readonly inFlight = new Set<Promise<unknown>>()
  /** Due dispatches waiting for a drive slot of this process, in arrival order. */
  private readonly queued = new Map<string, Dispatch>()
  /** Slots taken by webhooks between deciding to drive and the drive being in flight. */
  private reservedSlots = 0
  private readonly gate: ConcurrencyGate
  private readonly canceller: Canceller
  readonly deadlines: StepDeadlines

  constructor (deps: DispatchDeps, canceller: Canceller) {
    this.deps = deps
    this.gate = new ConcurrencyGate(deps.prefect, deps.snapshots, deps.store)
    this.canceller = canceller
    this.deadlines = { prefectCallMs: deps.prefect.callDeadlineMs, cloudRunCallMs: CLOUD_RUN_CALL_MS, createJobMs: CREATE_JOB_MS }
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
    const due = deferUntil(run, event.receivedAt, config.prefetchSeconds)
    // Over the bound of drives in flight, a due run is recorded to wait a little: it is driven here
    // as soon as a drive ends, and its timer (or reconcile) drives it should this process die first.
    // A slot is reserved now, before any await, so concurrent webhooks cannot all take the last one.
    const reserved = due === null && this.reserve()
    const overflow = due === null && !reserved
    const until = overflow ? new Date(event.receivedAt.getTime() + OVERFLOW_WAIT_MS) : due
    const input: NewDispatch = {
      key: dispatchKey(run),
      flowRunId: run.id,
      flowRunName: run.name,
      pool: run.work_pool_name ?? '',
      deploymentId: run.deployment_id,
      scheduledAt: scheduledTime(run)?.toISOString() ?? null,
      state: until === null ? 'received' : 'deferred',
      dueAt: until?.toISOString() ?? null,
      receivedAt: event.receivedAt.toISOString(),
      detail: `${event.event ?? 'webhook'} for ${state.name} state ${state.id}` +
        (overflow
          ? `; ${config.maxInFlight} drives in flight already: driven when one ends`
          : until === null ? '' : `; due at ${until.toISOString()}`)
    }
    let recorded: { dispatch: Dispatch, created: boolean, own?: Ownership }
    try {
      // A run driven now is recorded already taken by this drive: one write, not two.
      recorded = until === null
        ? await Ownership.create(store, input, this.deps.instanceId, this.deadlines, this.firstStepMs())
        : await store.createDispatch(input)
    } catch (err) {
      this.unreserve(reserved)
      throw err
    }
    const { dispatch, created, own } = recorded
    if (!created) {
      this.unreserve(reserved)
      // Arming again is idempotent: another instance, or a lost timer, is covered.
      await this.schedule(dispatch)
      return { status: 'duplicate', reason: 'this Scheduled state was dispatched already', dispatch }
    }
    if (own === undefined) {
      // Recorded to wait: for its time, or for a drive slot.
      await this.schedule(dispatch)
      const timer = timerFor(dispatch, config.prefetchSeconds)
      if (!overflow && timer !== null) this.deps.activity.timerArmed(dispatch, timer.fireAt, config.timers)
      if (overflow) this.enqueue(dispatch)
      return { status: 'accepted', dispatch }
    }
    this.unreserve(reserved)
    return { status: 'accepted', dispatch: await this.driveWithin(this.track(this.drive(own, dispatch, run)), dispatch, config.webhookDeadlineMs) }
  }

  /** The bound of drives in flight in this process is reached (PUSHPOOL_MAX_IN_FLIGHT), counting slots reserved. */
  private saturated (): boolean {
    return this.inFlight.size + this.reservedSlots >= this.deps.config.maxInFlight
  }

  /** Takes a drive slot for a drive about to start, if one is free. */
  private reserve (): boolean {
    if (this.saturated()) return false
    this.reservedSlots++
    return true
  }

  private unreserve (reserved: boolean): void {
    if (reserved) this.reservedSlots--
  }

  /** Waits for a drive slot in this process: driven in arrival order as drives end. */
  private enqueue (dispatch: Dispatch): void {
    if (!this.queued.has(dispatch.id)) this.queued.set(dispatch.id, dispatch)
  }

  /** Starts queued dispatches while there are free slots; each starts only if nobody else drives it now. */
  private startQueued (): void {
    for (const [id, dispatch] of this.queued) {
      if (!this.reserve()) return
      this.queued.delete(id)
      this.driveIfFree(dispatch, { reserved: true }).catch(async err => {
        this.deps.log.warn({ dispatch_id: id, err: (err as Error).message }, 'a queued drive failed; its timer is armed again')
        // The timer that queued it may have fired already: armed again (the same timer, so once at
        // most), it drives the dispatch, and backs off should this go on failing. Reconcile remains.
        await this.schedule(dispatch)
      })
    }
  }

  /**
   * A timer fired for a dispatch: drive it if it still waits and nobody else drives it now. Over
   * the bound of drives in flight it joins the queue instead (`saturated`).
   */
  async fire (dispatchId: string): Promise<FireOutcome> {
    const dispatch = await this.deps.store.getDispatch(dispatchId)
    if (dispatch === null) return { kind: 'gone' }
    if (!DRIVABLE_STATES.includes(dispatch.state)) return { kind: 'moved-on', dispatch }
    if (!timerIsDue(dispatch, new Date(), this.deps.config.prefetchSeconds)) return { kind: 'moved-on', dispatch }
    if (!this.reserve()) {
      this.enqueue(dispatch)
      return { kind: 'saturated', dispatch }
    }
    const driven = await this.driveIfFree(dispatch, { reserved: true })
    return driven === null ? { kind: 'busy', dispatch } : { kind: 'driven', dispatch: driven }
  }

  /**
   * Arms the timer of a dispatch that waits for a time (decisions.ts timerFor). A timer that
   * cannot be armed is logged and left to reconcile, which arms every waiting dispatch again: it
   * never fails the dispatch.
   */
  async schedule (dispatch: Dispatch | null): Promise<void> {
    const timer = dispatch === null ? null : timerFor(dispatch, this.deps.config.prefetchSeconds)
    if (timer === null) return
    try {
      await this.deps.timers.arm(timer)
    } catch (err) {
      this.deps.log.warn({ dispatch_id: timer.dispatchId, err: (err as Error).message }, 'could not arm the timer; reconcile arms it again')
    }
  }

  /** Removes a superseded dispatch's timer where the backend allows; a timer left behind finds nothing to do. */
  private async unschedule (dispatch: Dispatch): Promise<void> {
    const timer = timerFor(dispatch, this.deps.config.prefetchSeconds)
    if (timer === null) return
    await this.deps.timers.disarm(timer).catch(err => {
      this.deps.log.info({ dispatch_id: dispatch.id, err: (err as Error).message }, 'could not remove a stale timer; it will find nothing to do')
    })
  }

  /**
   * Drives a dispatch if it is to be had: in a drivable state, and owned by no live drive. Null
   * when it is not (another drive owns it, or it moved on).
   */
  async driveIfFree (dispatch: Dispatch, slot: { reserved: boolean } = { reserved: false }): Promise<Dispatch | null> {
    let taken
    try {
      taken = await Ownership.acquire(this.deps.store, dispatch.id, DRIVABLE_STATES, this.deps.instanceId, this.deadlines,
        this.firstStepMs())
    } finally {
      // From here the drive counts in flight (or there is none): the reservation has served.
      this.unreserve(slot.reserved)
    }
    if (taken === null) return null
    return await this.track(this.drive(taken.own, taken.dispatch))
  }

  /**
   * How long a new lease holds before its first renewal. The reads before the first side effect
   * (the run, the limits' counts) are not side effects: should they outlast it, the drive's first
   * fenced write fails and another pass drives the dispatch, so one call's deadline is enough.
   */
  private firstStepMs (): number {
    return this.deadlines.prefectCallMs
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
    if (superseded === null) return await store.getDispatch(attempt.dispatch.id)
    await this.unschedule(attempt.dispatch)
    return null
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
      scheduledAt: scheduled.state_details?.scheduled_time ?? null,
      state: 'skipped',
      dueAt: null,
      receivedAt: event.receivedAt.toISOString(),
      detail: `${event.event ?? 'webhook'}: flow run is already ${stateName}; another party owns it`
    })
    if (!created) return { status: 'duplicate', reason: `flow run is ${stateName}; it was dispatched already`, dispatch }
    return { status: 'ignored', reason: `flow run is already ${stateName}; another party owns it`, dispatch }
  }

  /**
   * Waits for a drive but answers by `deadlineMs` whatever happens, because Prefect gives a
   * webhook 10 s. The drive itself goes on; if this instance dies first, reconcile finishes it.
   */
  private async driveWithin (drive: Promise<Dispatch>, dispatch: Dispatch, deadlineMs: number): Promise<Dispatch> {
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
   * Claim → render → launch → report, owning the dispatch throughout. A `received` or `deferred`
   * dispatch is claimed first (within the pool's concurrency limits); a `retrying` one already owns
   * its run (Pending was accepted) and goes straight to the launch; a `launching` one was cut short
   * (its drive lost its lease or its process) and looks for the execution it may have made first.
   * A drive that loses its lease stops where it is: whoever took the dispatch carries on.
   */
  private async drive (own: Ownership, dispatch: Dispatch, knownFlowRun?: FlowRun): Promise<Dispatch> {
    const log = this.deps.log.child({ dispatch_id: dispatch.id, flow_run_id: dispatch.flowRunId })
    try {
      return await this.advance(own, dispatch, log, knownFlowRun)
    } catch (err) {
      if (!(err instanceof LeaseLost)) throw err
      log.warn({ reason: err.message }, 'drive stopped: it lost its lease')
      return (await this.deps.store.getDispatch(dispatch.id)) ?? dispatch
    } finally {
      // A drive ends with its dispatch at rest (or another drive's): nobody need wait for the lease.
      await own.release()
    }
  }

  private async advance (own: Ownership, dispatch: Dispatch, log: Logger, knownFlowRun?: FlowRun): Promise<Dispatch> {
    const { store, prefect } = this.deps
    switch (dispatch.state) {
      case 'retrying':
        return await this.launch(own, dispatch, log, knownFlowRun)
      case 'launching': {
        const moved = await own.transition('retry', { executionMayExist: true },
          { detail: 'the launch was cut short; its execution, if any, is looked for first' })
        return moved === null ? (await store.getDispatch(dispatch.id)) ?? dispatch : await this.launch(own, moved, log, knownFlowRun)
      }
      case 'claimed': {
        // A claim cut short before Prefect answered: propose again (idempotent, see proposePending).
        const claimed = await this.proposePending(own, dispatch, log)
        if (claimed === null || claimed.state !== 'claimed') return claimed ?? dispatch
        return await this.launch(own, claimed, log, knownFlowRun)
      }
      default:
        break
    }
    const flowRun = knownFlowRun ?? await prefect.readFlowRun(dispatch.flowRunId)
    if (flowRun === null) {
      return (await own.transition('supersede', {}, { detail: 'the flow run no longer exists in Prefect' })) ?? dispatch
    }
    const verdict = stillToLaunch(dispatch, flowRun, new Date(), this.deps.config.prefetchSeconds)
    if (!verdict.go) {
      return (await own.transition('supersede', { dueAt: null }, { detail: `the run moved on: ${verdict.why}` })) ?? dispatch
    }
    let admission
    try {
      admission = await this.gate.admit(flowRun, () => this.claim(own, dispatch, log), isOwnPending(flowRun, dispatch))
    } catch (err) {
      if (!(err instanceof RetryLater)) throw err
      admission = { admitted: false as const, reason: `the concurrency limits could not be checked: ${err.message}` }
    }
    if (!admission.admitted) {
      log.info({ reason: admission.reason }, 'dispatch deferred')
      const held = await own.transition('hold',
        { dueAt: new Date(Date.now() + LIMIT_RECHECK_MS).toISOString() }, { detail: `deferred: ${admission.reason}` })
      await this.schedule(held)
      return held ?? (await store.getDispatch(dispatch.id)) ?? dispatch
    }
    const claimed = admission.value
    if (claimed === null || claimed.state !== 'claimed') return claimed ?? dispatch
    return await this.launch(own, claimed, log, flowRun)
  }

  /** The Pending proposal, and the read that may follow it. */
  private proposalMs (): number {
    return 2 * this.deadlines.prefectCallMs
  }

  /** The render's reads (the deployment, blocks, variables: two rounds at most) before `launching`. */
  private renderMs (): number {
    return 2 * this.deadlines.prefectCallMs
  }

  /** A drive that comes to rest waiting for a time arms its timer. */
  private async rest (dispatch: Dispatch | null): Promise<Dispatch | null> {
    await this.schedule(dispatch)
    return dispatch
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
    const forget = (): void => {
      this.inFlight.delete(promise)
      this.startQueued()
    }
    promise.then(forget, forget)
    return promise
  }

  /** Moves a `received` or `deferred` dispatch to `claimed`, then proposes Pending. */
  private async claim (own: Ownership, dispatch: Dispatch, log: Logger): Promise<Dispatch | null> {
    // Nothing has been launched for this dispatch yet: its first launch needs no look.
    const mine = await own.transition('claim', { dueAt: null, executionMayExist: false }, { detail: 'proposing Pending to Prefect' },
      { holdFor: this.proposalMs() })
    if (mine === null) return await this.deps.store.getDispatch(dispatch.id)
    return await this.proposePending(own, mine, log)
  }

  /**
   * Proposes Pending without force, so Prefect arbitrates between pushpool and any other claimant.
   * The state's message names the dispatch: a proposal whose reply was lost (a timeout) may still
   * have been applied, and the next attempt, answered ABORT, recognises the Pending as its own.
   */
  private async proposePending (own: Ownership, mine: Dispatch, log: Logger): Promise<Dispatch | null> {
    const { prefect, config } = this.deps
    let result
    await own.hold(this.proposalMs())
    try {
      result = await prefect.setFlowRunState(mine.flowRunId, { type: 'PENDING', name: 'Pending', message: pendingMessage(mine) }, false)
    } catch (err) {
      if (!(err instanceof RetryLater)) return await this.failBeforeLaunch(own, mine, err, log)
      // Not `retrying`: that state means Pending was accepted. The run is claimed again later.
      log.warn({ err: err.message }, 'could not propose Pending; the claim will be retried')
      return await this.rest(await own.transition('postponeClaim',
        { dueAt: new Date(Date.now() + config.retryDelaySeconds * 1000).toISOString() },
        { detail: `could not propose Pending: ${err.message}` }))
    }
    const reply = { status: result.status, state: result.state?.type ?? null, details: result.details }
    const verdict = judgePendingReply(result)
    switch (verdict.kind) {
      case 'accepted':
        log.debug({ reply }, 'Prefect accepted Pending')
        return this.claimedBy(await own.note('pending_accepted', {}, { detail: 'Prefect accepted Pending', reply }, { holdFor: this.renderMs() }))
      case 'wait':
        return await this.rest(await own.transition('postponeClaim',
          { dueAt: new Date(Date.now() + verdict.seconds * 1000).toISOString() },
          { detail: `Prefect asked to wait ${verdict.seconds} s: ${result.details.reason ?? ''}`.trim(), reply }))
      case 'refused': {
        const current = await prefect.readFlowRun(mine.flowRunId)
        if (isOwnPending(current, mine)) {
          return this.claimedBy(await own.note('pending_accepted', {}, { detail: 'an earlier Pending proposal of this dispatch was applied', reply },
            { holdFor: this.renderMs() }))
        }
        // Prefect refuses Pending for a run whose deployment was deleted ("Deployment not found.").
        const deploymentId = current?.deployment_id ?? null
        if (deploymentId !== null && await prefect.readDeployment(deploymentId) === null) {
          return await this.cancelForGoneDeployment(own, mine, new DeploymentGone(deploymentId), log)
        }
        log.info({ reply }, 'another party owns the flow run')
        return await own.transition('yield', {},
          { detail: `Prefect answered ${result.status}: ${result.details.reason ?? 'another party owns the flow run'}`, reply })
      }
    }
  }

  /** The run is this dispatch's: said in Prefect. */
  private claimedBy (claimed: Dispatch | null): Dispatch | null {
    if (claimed !== null) this.deps.activity.claimed(claimed)
    return claimed
  }

  private async launch (own: Ownership, dispatch: Dispatch, log: Logger, knownFlowRun?: FlowRun): Promise<Dispatch> {
    const { store, prefect, launcher, config } = this.deps
    const { prefectCallMs, cloudRunCallMs, createJobMs } = this.deadlines
    await own.hold(this.renderMs())
    let prepared
    try {
      prepared = await prepareLaunch(this.deps, dispatch, knownFlowRun)
    } catch (err) {
      return await this.failBeforeLaunch(own, dispatch, err, log)
    }
    for (const warning of prepared.config.warnings) log.warn({ warning }, 'job template warning')
    const launching = await own.transition('launch', {
      project: prepared.project,
      region: prepared.region,
      jobName: prepared.plan.jobName,
      jobSpec: prepared.redactedJob,
      keepJob: prepared.config.keepJob,
      gcpIdentity: prepared.identity,
      deploymentName: prepared.deploymentName,
      flowName: prepared.flowName
    }, {
      detail: `launching ${prepared.plan.mode === 'reuse' ? 'on shared job' : 'per-run job'} ${prepared.plan.jobName}`,
      reply: prepared.config.warnings.length > 0 ? { warnings: prepared.config.warnings } : undefined
    }, { holdFor: cloudRunCallMs }) // the first Cloud Run call's (a CreateJob renews for its longer one)
    if (launching === null) return (await store.getDispatch(dispatch.id)) ?? dispatch

    let attempts = launching.attempts
    const callDeadline: Record<LaunchCall, number> = { look: cloudRunCallMs, create: createJobMs, run: cloudRunCallMs }
    const outcome = await launcher.launch(prepared.clients, prepared.plan, {
      maxAttempts: config.launchAttempts,
      // Read from the row this launch's compare-and-set returned, so no other launch can have
      // changed it since. A first launch has it cleared by its claim.
      executionMayExist: launching.executionMayExist,
      // No Cloud Run call is made unless the lease holds for as long as the call may take.
      beforeCall: call => own.hold(callDeadline[call]),
      onAttemptFailed: async failure => {
        attempts++
        log.warn({ attempt: failure.attempt, rpc_status: failure.status }, 'launch attempt failed')
        await own.note('attempt_failed', { attempts }, { detail: failure.error, reply: { rpc_status: failure.status } })
      }
    })
    if (outcome.kind === 'refused') return await this.failBeforeLaunch(own, launching, outcome.error, log)
    if (outcome.kind === 'unavailable') {
      return await this.failBeforeLaunch(own, launching, outcome.error, log, { executionMayExist: outcome.executionMayExist })
    }
    log.info({ execution: outcome.executionName, adopted: outcome.adopted }, 'execution launched')

    let pidNote = 'infrastructure_pid set'
    await own.hold(prefectCallMs)
    try {
      await prefect.setInfrastructurePid(dispatch.flowRunId, outcome.executionName)
    } catch (err) {
      // The execution exists: the dispatch is launched whatever Prefect says now. Cancellation
      // by the engine still works; only Prefect's own infrastructure kill would miss it.
      pidNote = `could not set infrastructure_pid: ${(err as Error).message}`
      log.warn({ err }, 'could not set infrastructure_pid')
    }
    const launched = await own.transition('launched', {
      executionName: outcome.executionName,
      ...(outcome.logUri !== null ? { logUri: outcome.logUri } : {}),
      launchedAt: new Date().toISOString(),
      attempts: launching.attempts + outcome.attempts,
      error: null
    }, { detail: `${outcome.adopted ? 'adopted execution from an earlier attempt' : 'execution started'}; ${pidNote}`, reply: outcome.reply },
    { release: true })
    if (launched !== null) {
      this.deps.activity.launched(launched, {
        objects: prepared.objects,
        project: prepared.project,
        region: prepared.region,
        jobName: prepared.plan.jobName,
        executionName: outcome.executionName,
        command: prepared.command,
        createdJob: outcome.reply.createdJob
      })
    }
    return launched ?? dispatch
  }

  /**
   * A failure before an execution exists. Retryable ones wait for reconcile; permanent ones crash
   * the flow run with a message that names the cause, as Prefect's worker does. `launch` says
   * whether the failed launch may have left an execution; an error from anywhere but the launcher
   * keeps what the record says. The move is made only from the state this drive left the record
   * in, so a record another drive has moved on since is left to it.
   */
  private async failBeforeLaunch (own: Ownership, dispatch: Dispatch, err: unknown, log: Logger,
    launch: { executionMayExist?: boolean } = {}): Promise<Dispatch> {
    const { prefect } = this.deps
    if (err instanceof LeaseLost) throw err
    if (err instanceof DeploymentGone) return await this.cancelForGoneDeployment(own, dispatch, err, log)
    if (err instanceof RetryLater) {
      log.warn({ err: err.message }, 'dispatch will be retried')
      // A quota's rest says when a retry can first succeed: then, neither sooner nor later.
      const retryAt = err.retryAt ?? new Date(Date.now() + this.deps.config.retryDelaySeconds * 1000)
      return (await this.rest(await own.transition('retry',
        { dueAt: retryAt.toISOString(), error: err.message, ...launch },
        { detail: err.message }, { from: [dispatch.state] }))) ?? dispatch
    }
    const message = err instanceof NeverRetry ? err.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`
    if (!(err instanceof NeverRetry)) log.error({ err }, 'unexpected dispatch error')
    else log.warn({ reason: message }, 'dispatch failed permanently; crashing the flow run')
    let reply: unknown = null
    await own.hold(this.deadlines.prefectCallMs)
    try {
      const result = await prefect.setFlowRunState(dispatch.flowRunId, { type: 'CRASHED', name: 'Crashed', message: CRASH_PREFIX + message }, false)
      reply = { status: result.status, state: result.state?.type ?? null, details: result.details }
    } catch (crashErr) {
      reply = { error: (crashErr as Error).message }
      log.error({ err: crashErr }, 'could not report Crashed to Prefect')
    }
    const failed = await own.transition('submitFailed', { error: message }, { detail: CRASH_PREFIX + message, reply }, { from: [dispatch.state] })
    if (failed !== null) this.deps.activity.submitFailed(failed, CRASH_PREFIX + message)
    return failed ?? dispatch
  }

  /** The run's deployment is gone: the run is cancelled, as Prefect's worker cancels it, and nothing launched. */
  private async cancelForGoneDeployment (own: Ownership, dispatch: Dispatch, gone: DeploymentGone, log: Logger): Promise<Dispatch> {
    log.warn({ reason: gone.message }, 'the run\'s deployment no longer exists; cancelling the run')
    await own.hold(this.deadlines.prefectCallMs)
    const result = await this.deps.prefect.setFlowRunState(dispatch.flowRunId, { type: 'CANCELLED', name: 'Cancelled', message: gone.message }, true)
    const cancelled = await own.transition('cancelUnlaunched', { dueAt: null },
      { detail: gone.message, reply: { status: result.status, state: result.state?.type ?? null } }, { from: [dispatch.state] })
    if (cancelled !== null) this.deps.activity.cancelled(cancelled, gone.message, null)
    return cancelled ?? (await this.deps.store.getDispatch(dispatch.id)) ?? dispatch
  }

  /** Admin redrive: drive a dispatch that is waiting or stuck, now rather than at reconcile. */
  async redrive (dispatch: Dispatch): Promise<RedriveOutcome> {
    if (!DRIVABLE_STATES.includes(dispatch.state)) return { kind: 'not-drivable', dispatch }
    const driven = await this.driveIfFree(dispatch)
    if (driven !== null) return { kind: 'driven', dispatch: driven }
    const now = (await this.deps.store.getDispatch(dispatch.id)) ?? dispatch
    return DRIVABLE_STATES.includes(now.state) ? { kind: 'busy', dispatch: now } : { kind: 'not-drivable', dispatch: now }
  }
}
