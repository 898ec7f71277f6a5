// The Cloud Run adapter: turns a launch plan into exactly one execution. RunJob is not idempotent
// and the execution's name cannot be chosen, so before any retry (and before the first attempt of
// a dispatch that was attempted before) it looks for an execution that an earlier attempt may have
// created, and adopts it instead of running again.
import { setTimeout as sleep } from 'node:timers/promises'
import type { CloudRunClients } from '../gcp/clients.ts'
import { classifyGoogleError, grpcCodeOf, CloudRunUnavailable } from './errors.ts'
import type { V2EnvVar, V2Job } from './v2-job.ts'
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
  /** The execution was found from an earlier attempt rather than created now. */
  adopted: boolean
  /** RunJob calls made by this launch. */
  attempts: number
  /** Cloud Run's reply, for the event log. */
  reply: { execution: string, createdJob: boolean, operation?: string }
}

export interface LaunchOptions {
  maxAttempts: number
  /** Look for an existing execution before the first attempt too (a redrive or a crashed launch). */
  checkFirst: boolean
  onAttemptFailed?: (failure: LaunchAttemptFailure) => Promise<void> | void
  /** Backoff before retry n (1-based); injectable so tests and benchmarks need not wait. */
  backoffMs?: (retry: number) => number
}

const defaultBackoff = (retry: number): number => Math.min(2000, 250 * 2 ** (retry - 1)) * (0.75 + Math.random() * 0.5)

export class Launcher {
  // Jobs this process has seen exist, so a warm reuse-mode launch is one RunJob call.
  private readonly knownJobs = new Set<string>()

  async launch (clients: CloudRunClients, plan: LaunchPlan, options: LaunchOptions): Promise<LaunchResult> {
    const backoff = options.backoffMs ?? defaultBackoff
    let runCalls = 0
    let createdJob = false
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1 || options.checkFirst) {
        const existing = await this.findExecution(clients, plan)
        if (existing !== null) {
          return { executionName: existing, adopted: true, attempts: runCalls, reply: { execution: existing, createdJob } }
        }
      }
      try {
        createdJob = (await this.ensureJob(clients, plan)) || createdJob
        runCalls++
        const operation = await this.runJob(clients, plan)
        return { executionName: operation.execution, adopted: false, attempts: runCalls, reply: { ...operation, createdJob } }
      } catch (err) {
        const failure = err instanceof CloudRunUnavailable ? err : classifyGoogleError('RunJob', err)
        if (!(failure instanceof CloudRunUnavailable)) throw failure
        await options.onAttemptFailed?.({ attempt, error: failure.message, grpcCode: failure.grpcCode })
        if (attempt >= options.maxAttempts) {
          throw new CloudRunUnavailable(`Cloud Run launch gave up after ${attempt} attempts: ${failure.message}`, failure.grpcCode)
        }
        await sleep(backoff(attempt))
      }
    }
  }

  /** Creates the job unless this process knows it exists; ALREADY_EXISTS is success. Returns true if created. */
  private async ensureJob (clients: CloudRunClients, plan: LaunchPlan): Promise<boolean> {
    if (this.knownJobs.has(plan.jobName)) return false
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

  private async runJob (clients: CloudRunClients, plan: LaunchPlan): Promise<{ execution: string, operation?: string }> {
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
      const execution = (operation.metadata as { name?: string } | null)?.name
      if (typeof execution !== 'string' || execution === '') {
        throw new CloudRunUnavailable('Cloud Run RunJob returned no execution name in its operation metadata', null)
      }
      return { execution, operation: operation.name }
    } catch (err) {
      // The job vanished under us (deleted by an operator or retention): forget it, so the next
      // attempt recreates it.
      if (grpcCodeOf(err) === 5 && this.knownJobs.delete(plan.jobName)) {
        throw new CloudRunUnavailable(`Cloud Run job ${plan.jobName} disappeared; it will be recreated`, 5, { cause: err })
      }
      throw err
    }
  }

  /** An execution an earlier attempt of this dispatch created, or null. Unverifiable → retry later. */
  private async findExecution (clients: CloudRunClients, plan: LaunchPlan): Promise<string | null> {
    try {
      if (plan.overrides === null) {
        // Per-run mode: the job belongs to this dispatch alone, so any execution of it is ours.
        const [job] = await clients.jobs.getJob({ name: plan.jobName })
        return job.latestCreatedExecution?.name ?? null
      }
      for await (const execution of clients.executions.listExecutionsAsync({ parent: plan.jobName, pageSize: 50 })) {
        const created = timestampToDate(execution.createTime)
        if (created !== null && created < plan.notBefore) break
        const env = execution.template?.containers?.[0]?.env ?? []
        if (env.some(e => e.name === DISPATCH_MARKER_ENV && e.value === plan.dispatchId)) return execution.name ?? null
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

export function splitJobName (name: string): { parent: string, id: string } {
  const at = name.lastIndexOf('/jobs/')
  return { parent: name.slice(0, at), id: name.slice(at + '/jobs/'.length) }
}

function timestampToDate (ts: { seconds?: number | string | { toString(): string } | null, nanos?: number | null } | null | undefined): Date | null {
  if (ts === null || ts === undefined || ts.seconds === null || ts.seconds === undefined) return null
  return new Date(Number(ts.seconds.toString()) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6))
}
