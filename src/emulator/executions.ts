// Executions and how they progress: created by RunJob from the job's template plus overrides, then
// started, then finished by a local process, by the test (finishExecution), by a cancel, or at once.
import { randomUUID } from 'node:crypto'
import { status } from '@grpc/grpc-js'
import { durationMs } from './durations.ts'
import { executionSuffix, newEtag } from './ids.ts'
import { parseExecutionName, parseJobName } from './names.ts'
import type { OperationResult } from './operations.ts'
import { failedPrecondition, invalidArgument, notFound } from './rpc-error.ts'
import { TaskProcess, type OutputStream, type ProcessEnd } from './runner.ts'
import type { SecretStore } from './secrets.ts'
import { taskEnv } from './task-env.ts'
import type { Condition, EnvVar, Execution, ExecutionTemplate, Job, RunOverrides, TaskTemplate } from './types.ts'

export type ExecutionMode = 'process' | 'hold' | 'succeed'

/** What finishExecution accepts in 'hold' mode. */
export type HeldOutcome = { exitCode: number } | { timeout: true }

type Outcome =
  | HeldOutcome
  | { cancelled: true }
  /** The task never ran: missing image, unresolvable secret, no command, spawn failure. */
  | { notStarted: { reason?: string, message: string } }

/** Where a 'process' execution's container output goes (the emulator's Cloud Logging). */
export interface TaskOutput {
  /** A line the task's container wrote. */
  line (execution: Execution, stream: OutputStream, text: string): void
  /** The container's main process exited by itself with this code (not killed by a timeout or cancel). */
  exited (execution: Execution, exitCode: number): void
}

export interface ExecutionStoreOptions {
  mode: ExecutionMode
  /** Env every task process starts from, before the container's env. */
  processEnv: Record<string, string>
  missingImagePattern?: RegExp
  secrets: SecretStore
  output?: TaskOutput
  /** Called with a snapshot after every change of state (start, finish). */
  onChange: (execution: Execution) => void
}

interface ExecutionRecord {
  execution: Execution
  /** Creation order; timestamps can tie within a millisecond. */
  sequence: number
  process?: TaskProcess
  waiters: Array<(execution: Execution) => void>
}

export class ExecutionStore {
  readonly #options: ExecutionStoreOptions
  #records = new Map<string, ExecutionRecord>()
  #sequence = 0

  constructor (options: ExecutionStoreOptions) {
    this.#options = options
  }

  /** Creates the execution without starting it, so its RunJob operation can exist before anything happens.
   *  `creator` is who called RunJob, recorded as Cloud Run does. */
  create (job: Job, overrides: RunOverrides = {}, creator: string | null = null): Execution {
    const { project, location, job: jobId } = parseJobName(job.name)
    const { taskCount, task } = applyOverrides(job.template, overrides)
    let id: string
    do {
      id = `${jobId}-${executionSuffix()}`
    } while (this.#records.has(`${job.name}/executions/${id}`))
    const now = new Date().toISOString()
    const execution: Execution = {
      name: `${job.name}/executions/${id}`,
      uid: randomUUID(),
      generation: '1',
      observedGeneration: '1',
      ...(job.template.labels ? { labels: { ...job.template.labels } } : {}),
      ...(job.template.annotations ? { annotations: { ...job.template.annotations } } : {}),
      createTime: now,
      updateTime: now,
      launchStage: job.launchStage,
      ...(creator !== null ? { creator } : {}),
      job: jobId,
      parallelism: job.template.parallelism || taskCount,
      taskCount,
      template: task,
      reconciling: true,
      conditions: [{ type: 'Completed', state: 'CONDITION_PENDING', lastTransitionTime: now }],
      runningCount: 0,
      succeededCount: 0,
      failedCount: 0,
      cancelledCount: 0,
      retriedCount: 0,
      logUri: logUri(project, location, jobId, id),
      etag: newEtag()
    }
    this.#records.set(execution.name, { execution, sequence: this.#sequence++, waiters: [] })
    return structuredClone(execution)
  }

  start (name: string): void {
    const record = this.#require(name)
    const { execution } = record
    const { project, execution: id } = parseExecutionName(name)
    const container = execution.template.containers?.[0] ?? {}
    if (this.#options.missingImagePattern?.test(container.image ?? '')) {
      this.#finish(record, { notStarted: { reason: 'CONTAINER_MISSING', message: `Image '${container.image}' not found.` } })
      return
    }
    const identity = { project, job: execution.job, execution: id, taskIndex: 0, taskCount: execution.taskCount }
    const env = taskEnv(container, identity, this.#options.processEnv, this.#options.secrets)
    if ('secretError' in env) {
      this.#finish(record, { notStarted: { reason: 'SECRETS_ACCESS_CHECK_FAILED', message: env.secretError } })
      return
    }
    markStarted(execution)
    this.#changed(record)
    switch (this.#options.mode) {
      case 'succeed':
        this.#finish(record, { exitCode: 0 })
        return
      case 'hold':
        return
      case 'process': {
        const argv = [...container.command ?? [], ...container.args ?? []]
        if (argv.length === 0) {
          this.#finish(record, { notStarted: { message: `${taskFailure(id)}Application failed to start: ` +
            'the container has no command or args, and the emulator cannot run an image entrypoint.' } })
          return
        }
        // workingDir is a path inside the image, so the process runs in the emulator's directory instead.
        const { output } = this.#options
        const spec = {
          argv,
          env: env.env,
          timeoutMs: durationMs(execution.template.timeout ?? '600s'),
          onLine: (stream: OutputStream, text: string) => output?.line(record.execution, stream, text)
        }
        record.process = new TaskProcess(spec, end => {
          if ('exitCode' in end) output?.exited(record.execution, end.exitCode)
          this.#finish(record, processOutcome(end, id))
        })
      }
    }
  }

  finish (name: string, outcome: HeldOutcome): void {
    const record = this.#require(name)
    if (record.execution.completionTime) throw new Error(`Execution ${name} has already finished.`)
    record.process?.abandon(false)
    this.#finish(record, outcome)
  }

  cancel (name: string): Execution {
    const record = this.#require(name)
    if (record.execution.completionTime) {
      throw failedPrecondition(`Execution '${parseExecutionName(name).execution}' has already completed and cannot be cancelled.`)
    }
    record.process?.abandon(true)
    this.#finish(record, { cancelled: true })
    return structuredClone(record.execution)
  }

  /** Deleting a running execution stops it first, as Cloud Run does. */
  delete (name: string): Execution {
    const record = this.#require(name)
    if (!record.execution.completionTime) {
      record.process?.abandon(false)
      this.#finish(record, { cancelled: true })
    }
    this.#records.delete(name)
    return { ...structuredClone(record.execution), deleteTime: new Date().toISOString() }
  }

  deleteAllOf (jobName: string): void {
    for (const name of this.#namesOf(jobName)) this.delete(name)
  }

  hasRunning (jobName: string): boolean {
    return this.#namesOf(jobName).some(name => !this.#records.get(name)?.execution.completionTime)
  }

  get (name: string): Execution {
    return structuredClone(this.#require(name).execution)
  }

  find (name: string): Execution | undefined {
    const record = this.#records.get(name)
    return record && structuredClone(record.execution)
  }

  /** Newest first. `parent` is a job name, or `…/jobs/-` for every job in the location. */
  list (parent: string): Execution[] {
    return this.listSlice(parent, 0).items
  }

  /**
   * Items [start, end) of `list(parent)`, and how many it holds in all. Only the returned items
   * are copied, so a page costs its own size rather than the whole listing's.
   */
  listSlice (parent: string, start: number, end?: number): { items: Execution[], total: number } {
    const prefix = parent.endsWith('/jobs/-') ? parent.slice(0, -1) : `${parent}/executions/`
    const matching = [...this.#records.values()]
      .filter(record => record.execution.name.startsWith(prefix))
      .sort((a, b) => b.sequence - a.sequence)
    return { items: matching.slice(start, end).map(record => structuredClone(record.execution)), total: matching.length }
  }

  all (): Execution[] {
    return [...this.#records.values()].map(record => structuredClone(record.execution))
  }

  logs (name: string): string {
    return this.#records.get(name)?.process?.logs() ?? ''
  }

  waitFor (name: string): Promise<Execution> {
    const record = this.#require(name)
    if (record.execution.completionTime) return Promise.resolve(structuredClone(record.execution))
    return new Promise(resolve => record.waiters.push(resolve))
  }

  /** Kills every task process at once; their executions are left as they were. */
  killAll (): void {
    for (const record of this.#records.values()) record.process?.abandon(false)
  }

  #namesOf (jobName: string): string[] {
    return [...this.#records.keys()].filter(name => name.startsWith(`${jobName}/executions/`))
  }

  #require (name: string): ExecutionRecord {
    const record = this.#records.get(name)
    if (!record) {
      const { execution, location, project } = parseExecutionName(name)
      throw notFound(`Resource '${execution}' of kind 'EXECUTION' in region '${location}' in project '${project}' does not exist.`)
    }
    return record
  }

  #finish (record: ExecutionRecord, outcome: Outcome): void {
    if (record.execution.completionTime) return
    markFinished(record.execution, outcome)
    this.#changed(record)
    const finished = record.execution
    for (const resolve of record.waiters.splice(0)) resolve(structuredClone(finished))
  }

  #changed (record: ExecutionRecord): void {
    this.#options.onChange(structuredClone(record.execution))
  }
}

/** What the RunJob operation reports once its execution is over (undefined while it runs). */
export function runOperationResult (execution: Execution): OperationResult | undefined {
  if (!execution.completionTime) return undefined
  const completed = execution.conditions.find(c => c.type === 'Completed')
  if (completed?.state === 'CONDITION_SUCCEEDED') return { response: execution }
  const code = execution.cancelledCount > 0 ? status.CANCELLED : status.FAILED_PRECONDITION
  return { error: { code, message: completed?.message ?? 'The execution failed.' } }
}

function applyOverrides (template: ExecutionTemplate, overrides: RunOverrides): { taskCount: number, task: TaskTemplate } {
  const task = structuredClone(template.template ?? {})
  const containers = task.containers ?? []
  for (const override of overrides.containerOverrides ?? []) {
    const container = override.name ? containers.find(c => c.name === override.name) : containers[0]
    if (!container) {
      throw invalidArgument('Violation in RunJobRequest.overrides.container_overrides: ' +
        `container '${override.name ?? ''}' not found in the job's template.`)
    }
    if (override.env?.length) container.env = mergeEnv(container.env ?? [], override.env)
    if (override.clearArgs) delete container.args
    else if (override.args?.length) container.args = [...override.args]
  }
  if (overrides.timeout) task.timeout = overrides.timeout
  return { taskCount: overrides.taskCount || template.taskCount || 1, task }
}

/** Override vars replace same-named ones in place; new ones are appended. */
function mergeEnv (base: EnvVar[], overrides: EnvVar[]): EnvVar[] {
  const merged = new Map(base.map(variable => [variable.name, variable]))
  for (const variable of overrides) merged.set(variable.name, variable)
  return [...merged.values()]
}

function markStarted (execution: Execution): void {
  const now = new Date().toISOString()
  execution.startTime = now
  execution.updateTime = now
  execution.runningCount = 1
  setCondition(execution, { type: 'ResourcesAvailable', state: 'CONDITION_SUCCEEDED', lastTransitionTime: now })
  setCondition(execution, { type: 'Started', state: 'CONDITION_SUCCEEDED', lastTransitionTime: now })
  setCondition(execution, { type: 'Completed', state: 'CONDITION_RECONCILING', lastTransitionTime: now })
}

function markFinished (execution: Execution, outcome: Outcome): void {
  const now = new Date().toISOString()
  const id = parseExecutionName(execution.name).execution
  execution.completionTime = now
  execution.updateTime = now
  execution.reconciling = false
  execution.runningCount = 0
  execution.etag = newEtag()
  const failed = (fields: Partial<Condition>): void =>
    setCondition(execution, { type: 'Completed', state: 'CONDITION_FAILED', lastTransitionTime: now, ...fields })
  if ('cancelled' in outcome) {
    execution.cancelledCount = 1
    failed({ executionReason: 'CANCELLED', message: `Execution ${id} was cancelled.` })
  } else if ('notStarted' in outcome) {
    execution.failedCount = 1
    const { reason, message } = outcome.notStarted
    if (reason === 'CONTAINER_MISSING') {
      setCondition(execution, { type: 'ResourcesAvailable', state: 'CONDITION_FAILED', lastTransitionTime: now, reason, message })
    }
    failed({ ...(reason ? { reason } : {}), message })
  } else if ('timeout' in outcome) {
    execution.failedCount = 1
    failed({ message: `${taskFailure(id)}The configured timeout was reached.` })
  } else if (outcome.exitCode !== 0) {
    execution.failedCount = 1
    failed({ executionReason: 'NON_ZERO_EXIT_CODE', message: `${taskFailure(id)}The container exited with an error.` })
  } else {
    execution.succeededCount = 1
    setCondition(execution, { type: 'Completed', state: 'CONDITION_SUCCEEDED', lastTransitionTime: now })
  }
}

function taskFailure (executionId: string): string {
  return `Task ${executionId}-task0 failed with message: `
}

function processOutcome (end: ProcessEnd, executionId: string): Outcome {
  if ('startError' in end) {
    return { notStarted: { message: `${taskFailure(executionId)}Application failed to start: ${end.startError}` } }
  }
  return end
}

function setCondition (execution: Execution, condition: Condition): void {
  const index = execution.conditions.findIndex(c => c.type === condition.type)
  if (index === -1) execution.conditions.push(condition)
  else execution.conditions[index] = condition
}

function logUri (project: string, location: string, job: string, execution: string): string {
  const filter = `resource.type="cloud_run_job"\nresource.labels.job_name="${job}"\n` +
    `resource.labels.location="${location}"\nlabels."run.googleapis.com/execution_name"="${execution}"`
  return `https://console.cloud.google.com/logs/viewer?project=${encodeURIComponent(project)}` +
    `&resource=cloud_run_job/job_name/${encodeURIComponent(job)}&advancedFilter=${encodeURIComponent(filter)}`
}
