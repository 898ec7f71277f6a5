// The Cloud Run adapter: turns a launch plan into exactly one execution. RunJob is not idempotent
// and the execution's name cannot be chosen, so after a failure that may have been applied (a lost
// reply, a timeout, an internal error) every later attempt first looks for an execution that the
// earlier attempt may have created, and adopts it instead of running again. A failure Cloud Run
// declared before doing anything (a quota rejection) needs no such look.
import { setTimeout as sleep } from 'node:timers/promises'
import type { CloudRunClients } from '../gcp/clients.ts'
import { RpcStatus } from '../gcp/rpc-status.ts'
import { classifyFailure, CloudRunRejected, CloudRunUnavailable } from './outcomes.ts'
import type { V2EnvVar, V2Job } from '../jobconfig/v2-job.ts'
import { toProtoJob } from './proto-job.ts'
import type { JobMode } from '../config.ts'

/** The env var that marks an execution with the dispatch that launched it (reuse mode). */
export const DISPATCH_MARKER_ENV = 'PUSHPOOL_DISPATCH_ID'

/** Each unary Cloud Run call gives up after this long (the client's own default is 60 s). */
export const CLOUD_RUN_CALL_MS = 20_000
/** CreateJob, with the wait for the new job to be ready to run, gives up after this long. */
export const CREATE_JOB_MS = 60_000

const CALL = { timeout: CLOUD_RUN_CALL_MS }
// CreateJob's operation is polled as the client does by default, but not for ever.
const CREATE_JOB_CALL = {
  timeout: CLOUD_RUN_CALL_MS,
  longrunning: {
    initialRetryDelayMillis: 100,
    retryDelayMultiplier: 1.3,
    maxRetryDelayMillis: 5000,
    initialRpcTimeoutMillis: CLOUD_RUN_CALL_MS,
    rpcTimeoutMultiplier: 1,
    maxRpcTimeoutMillis: CLOUD_RUN_CALL_MS,
    totalTimeoutMillis: CREATE_JOB_MS - CLOUD_RUN_CALL_MS
  }
}

export interface LaunchPlan {
  mode: JobMode
  dispatchId: string
  /** Full resource name: projects/{p}/locations/{r}/jobs/{id}. */
  jobName: string
  /** The job to create when it is absent. */
  job: V2Job
  /** Per-execution env and timeout (reuse mode); null runs the job as it is (per-run mode). */
  overrides: { env: V2EnvVar[], timeoutSeconds: number } | null
  /** Executions created before this instant cannot belong to this dispatch. */
  notBefore: Date
}

export interface LaunchAttemptFailure {
  attempt: number
  error: string
  /** The failed call's google.rpc status; null when it had none. */
  status: number | null
}

/**
 * How a launch ended. `executionMayExist`: an attempt that may have been applied was made, by this
 * launch or an earlier one, and no look since has found its execution; the next launch of the
 * dispatch must look for it before running again.
 */
export type LaunchOutcome =
  | {
    kind: 'launched'
    executionName: string
    /** The execution's logs in the Cloud Console, when Cloud Run's reply carried it. */
    logUri: string | null
    /** The execution was found from an earlier attempt rather than created now. */
    adopted: boolean
    /** RunJob calls made by this launch. */
    attempts: number
    /** Cloud Run's reply, for the event log. */
    reply: { execution: string, createdJob: boolean, operation?: string }
  }
  | { kind: 'unavailable', error: CloudRunUnavailable, executionMayExist: boolean }
  | { kind: 'refused', error: CloudRunRejected }

/** A Cloud Run call a launch is about to make: a look for an earlier execution, CreateJob, or RunJob. */
export type LaunchCall = 'look' | 'create' | 'run'

export interface LaunchOptions {
  maxAttempts: number
  /** An earlier launch of this dispatch may have created an execution: look for it before the first attempt too. */
  executionMayExist: boolean
  /**
   * Awaited before each Cloud Run call; what it throws ends the launch at once, with nothing
   * called. The dispatch layer renews its lease here, for as long as the call may take.
   */
  beforeCall?: (call: LaunchCall) => Promise<void>
  onAttemptFailed?: (failure: LaunchAttemptFailure) => Promise<void> | void
  /** Backoff before retry n (1-based); injectable so tests and benchmarks need not wait. */
  backoffMs?: (retry: number) => number
}

const defaultBackoff = (retry: number): number => Math.min(2000, 250 * 2 ** (retry - 1)) * (0.75 + Math.random() * 0.5)
/** How long RunJob rests in a location after Cloud Run said its job-run quota is used up, at most. */
const defaultQuotaPause = (): number => 5000 * (0.75 + Math.random() * 0.5)
/** Cloud Run's job-run quota is per minute: a call counts against it for this long after it was admitted. */
const QUOTA_WINDOW_MS = 60_000

export interface LauncherOptions {
  /** Pause after a quota rejection, in ms; injectable so tests need not wait. */
  quotaPauseMs?: () => number
}

/** What one attempt (ensure the job, then RunJob) came to. */
type Attempt =
  | { kind: 'ran', execution: string, logUri: string | null, operation: string | undefined, createdJob: boolean }
  | { kind: 'failed', error: CloudRunUnavailable, runJobSent: boolean, mayHaveApplied: boolean, quota: boolean }
  | { kind: 'refused', error: CloudRunRejected }

type Look =
  | { kind: 'found', name: string, logUri: string | null }
  | { kind: 'none' }
  | { kind: 'unverifiable', error: CloudRunUnavailable }

export class Launcher {
  // Jobs this process has seen exist, so a warm reuse-mode launch is one RunJob call.
  private readonly knownJobs = new Set<string>()
  // CreateJob calls in flight, by job name: concurrent first launches on one job share one call.
  private readonly creating = new Map<string, Promise<boolean>>()
  // Locations (projects/p/locations/r) whose job-run quota Cloud Run said is used up, until when.
  private readonly quotaPausedUntil = new Map<string, number>()
  // When Cloud Run admitted this process's RunJob calls of the last quota window, by location, oldest first.
  private readonly admitted = new Map<string, number[]>()
  // Locations refused for quota and not admitted since: when the rest ends, the first attempt there
  // probes the quota while the others wait for its answer, rather than all being refused together.
  private readonly unprobed = new Set<string>()
  private readonly probing = new Map<string, Promise<void>>()
  private readonly quotaPause: () => number

  constructor (options: LauncherOptions = {}) {
    this.quotaPause = options.quotaPauseMs ?? defaultQuotaPause
  }

  async launch (clients: CloudRunClients, plan: LaunchPlan, options: LaunchOptions): Promise<LaunchOutcome> {
    const backoff = options.backoffMs ?? defaultBackoff
    const location = splitJobName(plan.jobName).parent
    let runCalls = 0
    let createdJob = false
    // Once true it stays true: a request whose reply was lost may still be applied after a look
    // found nothing.
    let executionMayExist = options.executionMayExist
    for (let attempt = 1; ; attempt++) {
      const turn = await this.quotaTurn(location)
      if (turn.kind === 'resting') {
        // Cloud Run has just refused a RunJob in this location for quota: another call now would
        // be refused too. Nothing is sent, so nothing can have been launched by this attempt.
        const error = new CloudRunUnavailable(`Cloud Run job-run quota in ${location} is used up; RunJob calls there rest until ` +
          `${turn.until.toISOString()} (attempt ${attempt} not sent)`, RpcStatus.RESOURCE_EXHAUSTED, { retryAt: turn.until })
        return { kind: 'unavailable', error, executionMayExist }
      }
      let result: Attempt
      try {
        if (executionMayExist) {
          await options.beforeCall?.('look')
          const look = await this.findExecution(clients, plan)
          if (look.kind === 'unverifiable') return { kind: 'unavailable', error: look.error, executionMayExist }
          if (look.kind === 'found') {
            return { kind: 'launched', executionName: look.name, logUri: look.logUri, adopted: true, attempts: runCalls, reply: { execution: look.name, createdJob } }
          }
        }
        result = await this.attempt(clients, plan, options.beforeCall)
        // Recorded before a probe's waiters go on, so they see the quota as this attempt found it.
        this.noteQuota(location, result)
      } finally {
        turn.done()
      }
      if (result.kind === 'refused') return result
      if (result.kind === 'ran') {
        createdJob ||= result.createdJob
        return {
          kind: 'launched',
          executionName: result.execution,
          logUri: result.logUri,
          adopted: false,
          attempts: runCalls + 1,
          reply: { execution: result.execution, ...(result.operation !== undefined ? { operation: result.operation } : {}), createdJob }
        }
      }
      if (result.runJobSent) runCalls++
      // A RunJob that Cloud Run may have applied leaves an execution to look for before any
      // further RunJob, now and in every later launch of this dispatch.
      executionMayExist ||= result.mayHaveApplied
      await options.onAttemptFailed?.({ attempt, error: result.error.message, status: result.error.status })
      const rest = this.pausedUntil(location)
      if (attempt >= options.maxAttempts || rest !== null) {
        const error = new CloudRunUnavailable(`Cloud Run launch gave up after ${attempt} attempts: ${result.error.message}`, result.error.status,
          { cause: result.error, ...(rest !== null ? { retryAt: rest } : {}) })
        return { kind: 'unavailable', error, executionMayExist }
      }
      await sleep(backoff(attempt))
    }
  }

  /** Ensures the job exists, then runs it once. */
  private async attempt (clients: CloudRunClients, plan: LaunchPlan, beforeCall: LaunchOptions['beforeCall']): Promise<Attempt> {
    let createdJob
    try {
      createdJob = await this.ensureJob(clients, plan, beforeCall)
    } catch (err) {
      if (err instanceof CloudRunRejected) return { kind: 'refused', error: err }
      if (!(err instanceof CloudRunUnavailable)) throw err
      // CreateJob failed: no RunJob was sent, so no execution can have come of this attempt.
      return { kind: 'failed', error: err, runJobSent: false, mayHaveApplied: false, quota: false }
    }
    await beforeCall?.('run')
    try {
      return { kind: 'ran', createdJob, ...await this.runJob(clients, plan) }
    } catch (err) {
      if (err instanceof CloudRunUnavailable) return { kind: 'failed', error: err, runJobSent: true, mayHaveApplied: true, quota: false }
      const failure = classifyFailure('RunJob', err)
      switch (failure.kind) {
        case 'missing':
          // The job vanished under us (deleted by an operator or retention): nothing ran. Forget
          // it, so the next attempt recreates it. A job this process never saw is a real refusal.
          if (!this.knownJobs.delete(plan.jobName)) return { kind: 'refused', error: failure.error }
          return {
            kind: 'failed',
            error: new CloudRunUnavailable(`Cloud Run job ${plan.jobName} disappeared; it will be recreated`, RpcStatus.NOT_FOUND, { cause: err }),
            runJobSent: true,
            mayHaveApplied: false,
            quota: false
          }
        case 'quota':
          return { kind: 'failed', error: failure.error, runJobSent: true, mayHaveApplied: false, quota: true }
        case 'transient':
          return { kind: 'failed', error: failure.error, runJobSent: true, mayHaveApplied: true, quota: false }
        default:
          return { kind: 'refused', error: failure.error }
      }
    }
  }

  /**
   * Until when RunJob rests in a location after a quota rejection: the usual pause, or less when
   * this process's own oldest call of the last minute leaves the quota's window sooner, since a slot
   * frees then at the latest. So a burst held by the quota resumes the moment the quota allows, not
   * up to a pause later; calls of other processes only ever free slots sooner, which the usual
   * pause's next try finds.
   */
  private quotaRestEnd (location: string): number {
    const now = Date.now()
    const usual = now + this.quotaPause()
    const oldest = this.admittedWithinWindow(location, now)[0]
    return oldest === undefined ? usual : Math.min(usual, Math.max(now, oldest + QUOTA_WINDOW_MS))
  }

  /**
   * Whether an attempt in this location may go now: not while the location rests, and, after a rest,
   * one attempt at a time until one is admitted (the probe), the others waiting for its answer.
   * Decided and taken in one step after the last wait, so two launches cannot both probe.
   */
  private async quotaTurn (location: string): Promise<{ kind: 'resting', until: Date } | { kind: 'go', done: () => void }> {
    for (let probe = this.probing.get(location); probe !== undefined; probe = this.probing.get(location)) await probe
    const until = this.pausedUntil(location)
    if (until !== null) return { kind: 'resting', until }
    if (!this.unprobed.has(location)) return { kind: 'go', done: () => {} }
    let settle = (): void => {}
    this.probing.set(location, new Promise<void>(resolve => { settle = resolve }))
    return {
      kind: 'go',
      done: () => {
        this.probing.delete(location)
        settle()
      }
    }
  }

  /**
   * What an attempt says of the quota: a RunJob admitted counts against it for a minute, and the
   * quota has room, so no probe is needed until the next refusal; a refusal rests the location.
   */
  private noteQuota (location: string, result: Attempt): void {
    if (result.kind === 'ran') this.noteAdmitted(location)
    if (result.kind === 'failed' && result.quota) {
      this.quotaPausedUntil.set(location, Math.max(this.quotaPausedUntil.get(location) ?? 0, this.quotaRestEnd(location)))
      this.unprobed.add(location)
    }
  }

  private noteAdmitted (location: string): void {
    this.unprobed.delete(location)
    const now = Date.now()
    const times = this.admittedWithinWindow(location, now)
    times.push(now)
    this.admitted.set(location, times)
  }

  private admittedWithinWindow (location: string, now: number): number[] {
    const times = this.admitted.get(location) ?? []
    let expired = 0
    while (expired < times.length && times[expired] <= now - QUOTA_WINDOW_MS) expired++
    if (expired > 0) times.splice(0, expired)
    if (times.length === 0) this.admitted.delete(location)
    return times
  }

  private pausedUntil (location: string): Date | null {
    const until = this.quotaPausedUntil.get(location)
    if (until === undefined) return null
    if (until > Date.now()) return new Date(until)
    this.quotaPausedUntil.delete(location)
    return null
  }

  /**
   * Creates the job unless this process knows it exists; ALREADY_EXISTS is success. Returns true
   * if this call created it. Concurrent calls for one job share a single CreateJob. Throws
   * CloudRunUnavailable or CloudRunRejected.
   */
  private async ensureJob (clients: CloudRunClients, plan: LaunchPlan, beforeCall: LaunchOptions['beforeCall']): Promise<boolean> {
    for (;;) {
      if (this.knownJobs.has(plan.jobName)) return false
      const pending = this.creating.get(plan.jobName)
      if (pending === undefined) break
      try {
        await pending
      } catch (err) {
        // A transient failure is this attempt's too: it is retried like any other. Anything else
        // (a refusal that may be about the other launch's credentials, or the other launch's own
        // hook stopping it) is the other launch's: this one then asks for itself.
        if (err instanceof CloudRunUnavailable) throw err
      }
    }
    // Registered before anything is awaited, so concurrent launches find it and wait.
    const creation = (async () => {
      await beforeCall?.('create')
      return await this.createJob(clients, plan)
    })().finally(() => { this.creating.delete(plan.jobName) })
    this.creating.set(plan.jobName, creation)
    return await creation
  }

  private async createJob (clients: CloudRunClients, plan: LaunchPlan): Promise<boolean> {
    const { parent, id } = splitJobName(plan.jobName)
    try {
      const [operation] = await clients.jobs.createJob({ parent, jobId: id, job: toProtoJob(plan.job) as never }, CREATE_JOB_CALL)
      // CreateJob's operation ends when the job is ready to run; Cloud Run refuses RunJob before.
      await operation.promise()
      this.knownJobs.add(plan.jobName)
      return true
    } catch (err) {
      const failure = classifyFailure('CreateJob', err)
      if (failure.kind !== 'exists') throw failure.error
      this.knownJobs.add(plan.jobName)
      return false
    }
  }

  private async runJob (clients: CloudRunClients, plan: LaunchPlan): Promise<{ execution: string, logUri: string | null, operation: string | undefined }> {
    const request = {
      name: plan.jobName,
      ...(plan.overrides === null
        ? {}
        : {
            overrides: {
              containerOverrides: [{ env: plan.overrides.env }],
              timeout: { seconds: plan.overrides.timeoutSeconds }
            }
          })
    }
    const [operation] = await clients.jobs.runJob(request as never, CALL)
    // The operation resolves only when the execution ends; its metadata names the execution now.
    const metadata = operation.metadata as { name?: string, logUri?: string | null } | null
    const execution = metadata?.name
    if (typeof execution !== 'string' || execution === '') {
      // A reply without the execution's name: the run may have started all the same.
      throw new CloudRunUnavailable('Cloud Run RunJob returned no execution name in its operation metadata', null)
    }
    const logUri = typeof metadata?.logUri === 'string' && metadata.logUri !== '' ? metadata.logUri : null
    return { execution, logUri, operation: operation.name }
  }

  /** An execution an earlier attempt of this dispatch created, if any; `unverifiable` when Cloud Run cannot say. */
  private async findExecution (clients: CloudRunClients, plan: LaunchPlan): Promise<Look> {
    try {
      if (plan.overrides === null) {
        // Per-run mode: the job belongs to this dispatch alone, so any execution of it is ours.
        const [job] = await clients.jobs.getJob({ name: plan.jobName }, CALL)
        const name = job.latestCreatedExecution?.name ?? null
        return name === null || name === '' ? { kind: 'none' } : { kind: 'found', name, logUri: null }
      }
      // autoPaginate off: the async iterator pages by itself, and google-gax otherwise prints an
      // AutopaginateTrueWarning line (not JSON) on stderr for every call.
      for await (const execution of clients.executions.listExecutionsAsync({ parent: plan.jobName, pageSize: 50 }, { ...CALL, autoPaginate: false })) {
        const created = timestampToDate(execution.createTime)
        if (created !== null && created < plan.notBefore) break
        const env = execution.template?.containers?.[0]?.env ?? []
        if (env.some(e => e.name === DISPATCH_MARKER_ENV && e.value === plan.dispatchId)) {
          return typeof execution.name === 'string' && execution.name !== ''
            ? { kind: 'found', name: execution.name, logUri: execution.logUri ?? null }
            : { kind: 'none' }
        }
      }
      return { kind: 'none' }
    } catch (err) {
      const failure = classifyFailure(plan.overrides === null ? 'GetJob' : 'ListExecutions', err)
      if (failure.kind === 'missing') return { kind: 'none' }
      // If we cannot tell whether an execution exists, running again could launch the flow twice.
      return {
        kind: 'unverifiable',
        error: new CloudRunUnavailable(`Cannot verify whether an earlier attempt launched an execution: ${failure.error.message}`,
          failure.error.status, { cause: err })
      }
    }
  }
}

export function splitJobName (name: string): { parent: string, id: string } {
  const at = name.lastIndexOf('/jobs/')
  return { parent: name.slice(0, at), id: name.slice(at + '/jobs/'.length) }
}

function timestampToDate (ts: { seconds?: number | string | { toString(): string } | null, nanos?: number | null } | null | undefined): Date | null {
  if (ts === null || ts === undefined || ts.seconds === null || ts.seconds === undefined) return null
  return new Date(Number(ts.seconds.toString()) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6))
}
