// The Cloud Run adapter: turns a launch plan into exactly one execution. RunJob is not idempotent
// and the execution's name cannot be chosen, so after a failure that may have been applied (a lost
// reply, a timeout, an internal error) every later attempt first looks for an execution that the
// earlier attempt may have created, and adopts it instead of running again. A failure Cloud Run
// declared before doing anything (a quota rejection) needs no such look.
import { setTimeout as sleep } from 'node:timers/promises'
import type { CloudRunClients } from '../gcp/clients.ts'
import { classifyGoogleError, grpcCodeOf, CloudRunRejected, CloudRunUnavailable } from './errors.ts'
import type { V2EnvVar, V2Job } from '../jobconfig/v2-job.ts'
import { toProtoJob } from './proto-job.ts'
import type { JobMode } from '../config.ts'

/** The env var that marks an execution with the dispatch that launched it (reuse mode). */
export const DISPATCH_MARKER_ENV = 'PUSHPOOL_DISPATCH_ID'

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
  grpcCode: number | null
}

export interface LaunchResult {
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

export interface LaunchOptions {
  maxAttempts: number
  /**
   * An earlier launch of this dispatch may have created an execution (its failure was ambiguous,
   * or its process died mid-way): look for it before the first attempt too.
   */
  checkFirst: boolean
  onAttemptFailed?: (failure: LaunchAttemptFailure) => Promise<void> | void
  /** Backoff before retry n (1-based); injectable so tests and benchmarks need not wait. */
  backoffMs?: (retry: number) => number
}

const defaultBackoff = (retry: number): number => Math.min(2000, 250 * 2 ** (retry - 1)) * (0.75 + Math.random() * 0.5)
/** How long RunJob rests in a location after Cloud Run said its job-run quota is used up. */
const defaultQuotaPause = (): number => 5000 * (0.75 + Math.random() * 0.5)

export interface LauncherOptions {
  /** Pause after a quota rejection, in ms; injectable so tests need not wait. */
  quotaPauseMs?: () => number
}

/**
 * The launch gave up. `executionPossible` says whether an execution may exist all the same (an
 * attempt's outcome was ambiguous, or was already before this launch): the next launch of the
 * dispatch must look for it before running again.
 */
export class LaunchGaveUp extends CloudRunUnavailable {
  readonly executionPossible: boolean
  constructor (message: string, grpcCode: number | null, executionPossible: boolean, options?: { cause?: unknown }) {
    super(message, grpcCode, options)
    this.executionPossible = executionPossible
  }
}

/** RunJob answered NOT_FOUND for a job this process had seen: nothing ran; the job is recreated. */
class JobVanished extends CloudRunUnavailable {}

export class Launcher {
  // Jobs this process has seen exist, so a warm reuse-mode launch is one RunJob call.
  private readonly knownJobs = new Set<string>()
  // CreateJob calls in flight, by job name: concurrent first launches on one job share one call.
  private readonly creating = new Map<string, Promise<boolean>>()
  // Locations (projects/p/locations/r) whose job-run quota Cloud Run said is used up, until when.
  private readonly quotaPausedUntil = new Map<string, number>()
  private readonly quotaPause: () => number

  constructor (options: LauncherOptions = {}) {
    this.quotaPause = options.quotaPauseMs ?? defaultQuotaPause
  }

  async launch (clients: CloudRunClients, plan: LaunchPlan, options: LaunchOptions): Promise<LaunchResult> {
    const backoff = options.backoffMs ?? defaultBackoff
    const location = splitJobName(plan.jobName).parent
    let runCalls = 0
    let createdJob = false
    // Whether an execution of this dispatch may exist that we do not know of. Once true it stays
    // true: a request whose reply was lost may still be applied after a look found nothing.
    let mustLook = options.checkFirst
    for (let attempt = 1; ; attempt++) {
      const paused = this.pausedUntil(location)
      if (paused !== null) {
        // Cloud Run has just refused a RunJob in this location for quota: another call now would
        // be refused too. Nothing is sent, so nothing can have been launched by this attempt.
        throw new LaunchGaveUp(`Cloud Run job-run quota in ${location} is used up; RunJob calls there rest until ` +
          `${paused.toISOString()} (attempt ${attempt} not sent)`, 8, mustLook)
      }
      if (mustLook) {
        let existing
        try {
          existing = await this.findExecution(clients, plan)
        } catch (err) {
          if (!(err instanceof CloudRunUnavailable)) throw err
          throw new LaunchGaveUp(err.message, err.grpcCode, true, { cause: err })
        }
        if (existing !== null) {
          return { executionName: existing.name, logUri: existing.logUri, adopted: true, attempts: runCalls, reply: { execution: existing.name, createdJob } }
        }
      }
      let failure: CloudRunUnavailable
      let sent = false
      try {
        createdJob = (await this.ensureJob(clients, plan)) || createdJob
        runCalls++
        sent = true
        const operation = await this.runJob(clients, plan)
        return {
          executionName: operation.execution,
          logUri: operation.logUri,
          adopted: false,
          attempts: runCalls,
          reply: { execution: operation.execution, ...(operation.operation !== undefined ? { operation: operation.operation } : {}), createdJob }
        }
      } catch (err) {
        if (err instanceof CloudRunRejected) throw err
        const classified = err instanceof CloudRunUnavailable ? err : classifyGoogleError('RunJob', err)
        if (!(classified instanceof CloudRunUnavailable)) throw classified
        failure = classified
        if (sent && isQuotaRejection(err)) {
          const until = Date.now() + this.quotaPause()
          this.quotaPausedUntil.set(location, Math.max(this.quotaPausedUntil.get(location) ?? 0, until))
        }
        // A RunJob that Cloud Run may have applied leaves an execution to look for before any
        // further RunJob, now and in every later launch of this dispatch.
        if (sent && !certainlyNotApplied(err)) mustLook = true
      }
      await options.onAttemptFailed?.({ attempt, error: failure.message, grpcCode: failure.grpcCode })
      if (attempt >= options.maxAttempts || this.pausedUntil(location) !== null) {
        throw new LaunchGaveUp(`Cloud Run launch gave up after ${attempt} attempts: ${failure.message}`, failure.grpcCode, mustLook)
      }
      await sleep(backoff(attempt))
    }
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
   * if this call created it. Concurrent calls for one job share a single CreateJob.
   */
  private async ensureJob (clients: CloudRunClients, plan: LaunchPlan): Promise<boolean> {
    for (;;) {
      if (this.knownJobs.has(plan.jobName)) return false
      const pending = this.creating.get(plan.jobName)
      if (pending === undefined) break
      try {
        await pending
      } catch (err) {
        // A transient failure is this attempt's too: it is retried like any other. A refusal may
        // be about the other launch's credentials, so this launch then asks for itself.
        if (!(err instanceof CloudRunRejected)) throw err
      }
    }
    const creation = this.createJob(clients, plan).finally(() => { this.creating.delete(plan.jobName) })
    this.creating.set(plan.jobName, creation)
    return await creation
  }

  private async createJob (clients: CloudRunClients, plan: LaunchPlan): Promise<boolean> {
    const { parent, id } = splitJobName(plan.jobName)
    try {
      const [operation] = await clients.jobs.createJob({ parent, jobId: id, job: toProtoJob(plan.job) as never })
      // CreateJob's operation ends when the job is ready to run; Cloud Run refuses RunJob before.
      await operation.promise()
      this.knownJobs.add(plan.jobName)
      return true
    } catch (err) {
      if (grpcCodeOf(err) === 6) {
        this.knownJobs.add(plan.jobName)
        return false
      }
      throw classifyGoogleError('CreateJob', err)
    }
  }

  private async runJob (clients: CloudRunClients, plan: LaunchPlan): Promise<{ execution: string, logUri: string | null, operation?: string }> {
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
    try {
      const [operation] = await clients.jobs.runJob(request as never)
      // The operation resolves only when the execution ends; its metadata names the execution now.
      const metadata = operation.metadata as { name?: string, logUri?: string | null } | null
      const execution = metadata?.name
      if (typeof execution !== 'string' || execution === '') {
        throw new CloudRunUnavailable('Cloud Run RunJob returned no execution name in its operation metadata', null)
      }
      const logUri = typeof metadata?.logUri === 'string' && metadata.logUri !== '' ? metadata.logUri : null
      return { execution, logUri, operation: operation.name }
    } catch (err) {
      // The job vanished under us (deleted by an operator or retention): forget it, so the next
      // attempt recreates it.
      if (grpcCodeOf(err) === 5 && this.knownJobs.delete(plan.jobName)) {
        throw new JobVanished(`Cloud Run job ${plan.jobName} disappeared; it will be recreated`, 5, { cause: err })
      }
      throw err
    }
  }

  /** An execution an earlier attempt of this dispatch created, or null. Unverifiable → retry later. */
  private async findExecution (clients: CloudRunClients, plan: LaunchPlan): Promise<{ name: string, logUri: string | null } | null> {
    try {
      if (plan.overrides === null) {
        // Per-run mode: the job belongs to this dispatch alone, so any execution of it is ours.
        const [job] = await clients.jobs.getJob({ name: plan.jobName })
        const name = job.latestCreatedExecution?.name ?? null
        return name === null || name === '' ? null : { name, logUri: null }
      }
      for await (const execution of clients.executions.listExecutionsAsync({ parent: plan.jobName, pageSize: 50 })) {
        const created = timestampToDate(execution.createTime)
        if (created !== null && created < plan.notBefore) break
        const env = execution.template?.containers?.[0]?.env ?? []
        if (env.some(e => e.name === DISPATCH_MARKER_ENV && e.value === plan.dispatchId)) {
          return typeof execution.name === 'string' && execution.name !== ''
            ? { name: execution.name, logUri: execution.logUri ?? null }
            : null
        }
      }
      return null
    } catch (err) {
      if (grpcCodeOf(err) === 5) return null
      const failure = classifyGoogleError('ListExecutions', err)
      // If we cannot tell whether an execution exists, running again could launch the flow twice.
      throw new CloudRunUnavailable(`Cannot verify whether an earlier attempt launched an execution: ${failure.message}`,
        grpcCodeOf(err), { cause: err })
    }
  }
}

/**
 * Cloud Run refused the call for quota ("Quota exceeded for quota metric …", or an ErrorInfo
 * reason saying so). It did so before acting on it. A bare RESOURCE_EXHAUSTED is not taken as
 * one: the gRPC client raises that code itself for a reply larger than it accepts, and that
 * reply may describe an execution that now exists.
 */
export function isQuotaRejection (err: unknown): boolean {
  if (grpcCodeOf(err) !== 8) return false
  if ((err as { reason?: unknown } | null)?.reason === 'RATE_LIMIT_EXCEEDED') return true
  const message = err instanceof Error ? err.message : String(err)
  return /quota exceeded|rate limit exceeded/i.test(message)
}

/**
 * A failed RunJob that certainly created no execution: a quota rejection, or one of the
 * permanent refusals (which never reach the retry path). Timeouts, UNAVAILABLE, INTERNAL,
 * UNKNOWN, ABORTED, a lost reply or a reply without an execution name may all have been applied.
 * The job vanishing (NOT_FOUND) also means nothing ran.
 */
function certainlyNotApplied (err: unknown): boolean {
  if (err instanceof JobVanished) return true
  return isQuotaRejection(err)
}

export function splitJobName (name: string): { parent: string, id: string } {
  const at = name.lastIndexOf('/jobs/')
  return { parent: name.slice(0, at), id: name.slice(at + '/jobs/'.length) }
}

function timestampToDate (ts: { seconds?: number | string | { toString(): string } | null, nanos?: number | null } | null | undefined): Date | null {
  if (ts === null || ts === undefined || ts.seconds === null || ts.seconds === undefined) return null
  return new Date(Number(ts.seconds.toString()) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6))
}
