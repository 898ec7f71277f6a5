// The stored Cloud Run jobs: validation and server defaults as Cloud Run applies them, and the
// execution bookkeeping (executionCount, latestCreatedExecution) that RunJob and completions update.
import { randomUUID } from 'node:crypto'
import { newEtag } from './ids.ts'
import { JOB_ID, parseJobName, parseLocationName } from './names.ts'
import { alreadyExists, invalidArgument, notFound } from './rpc-error.ts'
import type { Execution, ExecutionReference, ExecutionTemplate, Job } from './types.ts'

/** The Job fields a caller may set; everything else is output-only and comes from the server. */
const CALLER_FIELDS = ['labels', 'annotations', 'client', 'clientVersion', 'launchStage', 'binaryAuthorization',
  'template', 'startExecutionToken', 'runExecutionToken'] as const

const RESERVED_NAMESPACES = ['run.googleapis.com', 'cloud.googleapis.com', 'serving.knative.dev', 'autoscaling.knative.dev']

export type JobInput = Partial<Job>

export interface WriteOptions {
  validateOnly?: boolean
  /** Who makes the call; Cloud Run records it as the job's `creator` and `lastModifier`. */
  caller?: string | null
}

export class JobStore {
  #jobs = new Map<string, Job>()

  create (parent: string, jobId: string | undefined, input: JobInput, { validateOnly = false, caller = null }: WriteOptions = {}): Job {
    const location = parseLocationName(parent)
    if (!jobId || !JOB_ID.test(jobId)) {
      throw invalidArgument(`Invalid value for job_id: '${jobId ?? ''}'. Resource name must use only lowercase ` +
        "letters, numbers and '-'. Must begin with a letter and cannot end with a '-'. Maximum length is 63 characters.")
    }
    const name = `${location.parent}/jobs/${jobId}`
    if (this.#jobs.has(name)) throw alreadyExists(`Resource '${jobId}' already exists.`)
    validate(input, 'CreateJobRequest.job')
    const now = new Date().toISOString()
    const job: Job = {
      ...pickCallerFields(input),
      name,
      uid: randomUUID(),
      generation: '1',
      observedGeneration: '1',
      createTime: now,
      updateTime: now,
      launchStage: input.launchStage || 'GA',
      ...(caller !== null ? { creator: caller, lastModifier: caller } : {}),
      template: withServerDefaults(input.template ?? {}),
      terminalCondition: { type: 'Ready', state: 'CONDITION_SUCCEEDED', lastTransitionTime: now },
      conditions: [],
      executionCount: 0,
      reconciling: false,
      etag: newEtag()
    }
    if (!validateOnly) this.#jobs.set(name, job)
    return structuredClone(job)
  }

  /** UpdateJob replaces the caller-settable fields; with allowMissing it creates the job. */
  update (input: JobInput, { allowMissing = false, ...write }: WriteOptions & { allowMissing?: boolean } = {}): Job {
    const { parent, job: jobId } = parseJobName(input.name)
    const current = this.#jobs.get(`${parent}/jobs/${jobId}`)
    if (!current) {
      if (allowMissing) return this.create(parent, jobId, input, write)
      throw this.#notFound(`${parent}/jobs/${jobId}`)
    }
    validate(input, 'UpdateJobRequest.job')
    const generation = String(Number(current.generation) + 1)
    const outputOnly = Object.entries(current).filter(([key]) => !(CALLER_FIELDS as readonly string[]).includes(key))
    const updated = {
      ...Object.fromEntries(outputOnly),
      ...pickCallerFields(input),
      launchStage: input.launchStage || current.launchStage,
      ...(write.caller ? { lastModifier: write.caller } : {}),
      template: withServerDefaults(input.template ?? {}),
      generation,
      observedGeneration: generation,
      updateTime: new Date().toISOString(),
      etag: newEtag()
    } as Job
    if (write.validateOnly !== true) this.#jobs.set(updated.name, updated)
    return structuredClone(updated)
  }

  get (name: string): Job {
    return structuredClone(this.#require(name))
  }

  list (parent: string): Job[] {
    const location = parseLocationName(parent)
    return [...this.#jobs.values()]
      .filter(job => job.name.startsWith(`${location.parent}/jobs/`))
      .map(job => structuredClone(job))
  }

  delete (name: string): Job {
    const job = this.#require(name)
    this.#jobs.delete(name)
    return structuredClone({ ...job, deleteTime: new Date().toISOString() })
  }

  all (): Job[] {
    return [...this.#jobs.values()].map(job => structuredClone(job))
  }

  recordNewExecution (execution: Execution, jobName: string): void {
    const job = this.#require(jobName)
    job.executionCount++
    job.latestCreatedExecution = referenceTo(execution)
    job.etag = newEtag()
  }

  /** Keeps latestCreatedExecution's status current; older executions do not touch it. */
  recordExecutionUpdate (execution: Execution, jobName: string): void {
    const job = this.#jobs.get(jobName)
    if (job?.latestCreatedExecution?.name !== execution.name) return
    job.latestCreatedExecution = referenceTo(execution)
  }

  #require (name: string): Job {
    const job = this.#jobs.get(name)
    if (!job) throw this.#notFound(name)
    return job
  }

  #notFound (name: string): Error {
    const { job, location, project } = parseJobName(name)
    return notFound(`Resource '${job}' of kind 'JOB' in region '${location}' in project '${project}' does not exist.`)
  }
}

function pickCallerFields (input: JobInput): Partial<Job> {
  return Object.fromEntries(CALLER_FIELDS.filter(key => input[key] !== undefined).map(key => [key, structuredClone(input[key])]))
}

function validate (input: JobInput, path: string): void {
  checkNamespaces(input.labels, `${path}.labels`)
  checkNamespaces(input.annotations, `${path}.annotations`)
  checkNamespaces(input.template?.labels, `${path}.template.labels`)
  checkNamespaces(input.template?.annotations, `${path}.template.annotations`)
  const containers = input.template?.template?.containers ?? []
  if (containers.length === 0) {
    throw invalidArgument(`Violation in ${path}.template.template.containers: at least one container must be specified.`)
  }
  containers.forEach((container, i) => {
    if (!container.image) throw invalidArgument(`Violation in ${path}.template.template.containers[${i}].image: should be set.`)
  })
}

function checkNamespaces (map: Record<string, string> | undefined, path: string): void {
  for (const key of Object.keys(map ?? {})) {
    const namespace = key.includes('/') ? key.slice(0, key.indexOf('/')) : ''
    if (RESERVED_NAMESPACES.some(reserved => namespace === reserved || namespace.endsWith(`.${reserved}`))) {
      throw invalidArgument(`Violation in ${path}: '${key}' is not allowed. Cloud Run API v2 does not support labels ` +
        'with run.googleapis.com, cloud.googleapis.com, serving.knative.dev, or autoscaling.knative.dev namespaces.')
    }
  }
}

/** The defaults Cloud Run fills in and returns on GetJob (also seen in recorded real traffic). */
function withServerDefaults (input: ExecutionTemplate): ExecutionTemplate {
  const template = structuredClone(input)
  template.taskCount ||= 1
  const task = template.template ??= {}
  task.maxRetries ??= 3
  task.timeout ||= '600s'
  task.executionEnvironment ||= 'EXECUTION_ENVIRONMENT_GEN2'
  for (const container of task.containers ?? []) {
    const resources = container.resources ??= {}
    resources.limits = { cpu: '1000m', memory: '512Mi', ...resources.limits }
  }
  return template
}

function referenceTo (execution: Execution): ExecutionReference {
  const completed = execution.conditions.find(c => c.type === 'Completed')
  let completionStatus: ExecutionReference['completionStatus'] = execution.startTime ? 'EXECUTION_RUNNING' : 'EXECUTION_PENDING'
  if (execution.completionTime) {
    if (execution.cancelledCount > 0) completionStatus = 'EXECUTION_CANCELLED'
    else if (completed?.state === 'CONDITION_SUCCEEDED') completionStatus = 'EXECUTION_SUCCEEDED'
    else completionStatus = 'EXECUTION_FAILED'
  }
  return {
    name: execution.name,
    createTime: execution.createTime,
    ...(execution.completionTime ? { completionTime: execution.completionTime } : {}),
    completionStatus
  }
}
