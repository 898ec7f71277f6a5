// Cloud Tasks v2: queues, their HTTP tasks, each task's deliveries at its schedule time, and the
// names finished tasks leave taken for a while. Semantics from the v2 protos' comments
// (google/cloud/tasks/v2/{cloudtasks,task,queue,target}.proto) unless a comment cites otherwise.
import { durationMs, msDuration } from './durations.ts'
import { generatedTaskId } from './ids.ts'
import type { IdTokenIssuer } from './id-tokens.ts'
import { parseLocationName, parseQueueName, parseTaskName } from './names.ts'
import { alreadyExists, invalidArgument, notFound, unimplemented } from './rpc-error.ts'
import { outgoingRequest, retriesExhausted, retryDelayMs, sendAttempt } from './task-delivery.ts'
import type { Attempt, HttpMethod, HttpRequest, Queue, RetryConfig, Task } from './types.ts'

export interface TaskQueuesOptions {
  issuer: IdTokenIssuer
  /** How long a finished or deleted task's name stays taken. Google: ~1 hour for queues made through the API. */
  dedupWindowMs: number
  /** Cuts every delivery off after this long whatever the task's dispatch_deadline (at least 15 s on
   *  Google), so tests of slow workers need not wait that long. */
  dispatchDeadlineCapMs?: number
}

export type TaskView = 'BASIC' | 'FULL'

/** One request the emulator sent for a task. */
export interface TaskDelivery {
  task: string
  url: string
  method: string
  headers: Record<string, string>
  body?: Buffer
  dispatchTime: string
  /** The worker's HTTP status, once it answered */
  status?: number
  /** Why no status: 'deadline exceeded', or the connection error (ECONNREFUSED, …) */
  error?: string
}

export interface TaskEnd {
  /** The task as it was last, in the FULL view */
  task: Task
  /** 'succeeded': a 2xx answer; 'exhausted': retries used up; 'deleted': DeleteTask */
  outcome: 'succeeded' | 'exhausted' | 'deleted'
}

/** A task as CreateTask receives it (REST form, every field optional). */
export interface TaskInput {
  name?: string
  httpRequest?: Partial<Omit<HttpRequest, 'httpMethod'>> & { httpMethod?: HttpMethod | 'HTTP_METHOD_UNSPECIFIED', oauthToken?: unknown }
  appEngineHttpRequest?: unknown
  scheduleTime?: string
  dispatchDeadline?: string
}

export interface QueueInput {
  name?: string
  retryConfig?: Partial<RetryConfig>
  rateLimits?: Partial<Queue['rateLimits']>
}

interface TaskRecord {
  task: Task
  queueId: string
  timer?: NodeJS.Timeout
  inFlight?: AbortController
  previousResponse?: number
  /** Answers other than 5xx, which X-CloudTasks-TaskExecutionCount counts */
  handlerAnswers: number
  waiters: Array<(end: TaskEnd) => void>
}

// Defaults Cloud Tasks gives a queue made through the API, as its GetQueue answers show them
// (https://cloud.google.com/tasks/docs/deleting-appengine-queues-and-tasks).
const DEFAULT_RETRY: RetryConfig = { maxAttempts: 100, maxRetryDuration: '0s', minBackoff: '0.100s', maxBackoff: '3600s', maxDoublings: 16 }
const DEFAULT_RATE_LIMITS = { maxDispatchesPerSecond: 500, maxBurstSize: 100, maxConcurrentDispatches: 1000 }

const DEADLINE = { defaultMs: 600_000, minMs: 15_000, maxMs: 1_800_000 }
/** https://cloud.google.com/tasks/docs/quotas: a task may be scheduled at most 30 days ahead. */
const MAX_SCHEDULE_AHEAD_MS = 30 * 24 * 3600_000
const MAX_URL_LENGTH = 2083
const MAX_HEADERS_BYTES = 80 * 1024
const MAX_TIMER_MS = 2 ** 31 - 1
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH'])

const QUEUE_MISSING = 'Queue does not exist. If you just created the queue, wait at least a minute for the queue to initialize.'
const TASK_GONE = 'The task no longer exists, though a task with this name existed recently. The task either successfully completed or was deleted.'

export class TaskQueues {
  readonly #options: TaskQueuesOptions
  #queues = new Map<string, Queue>()
  #tasks = new Map<string, TaskRecord>()
  /** Names of finished or deleted tasks → when they may be used again */
  #takenUntil = new Map<string, number>()
  #ended = new Map<string, TaskEnd>()
  #deliveries: TaskDelivery[] = []
  #closed = false

  constructor (options: TaskQueuesOptions) {
    this.#options = options
  }

  createQueue (parent: string, input: QueueInput = {}): Queue {
    parseLocationName(parent)
    const { queueName, parent: queueParent } = parseQueueName(input.name)
    if (queueParent !== parent) throw invalidArgument(`Queue name '${input.name}' is not in the parent '${parent}'.`)
    if (this.#queues.has(queueName)) throw alreadyExists('Requested entity already exists')
    const retry = input.retryConfig ?? {}
    if ((retry.maxAttempts ?? 0) < -1) throw invalidArgument('retry_config.max_attempts must be at least -1.')
    // proto3 sends an unset number as 0, and Cloud Tasks takes 0 as "pick the default".
    const queue: Queue = {
      name: queueName,
      rateLimits: {
        maxDispatchesPerSecond: input.rateLimits?.maxDispatchesPerSecond || DEFAULT_RATE_LIMITS.maxDispatchesPerSecond,
        maxBurstSize: DEFAULT_RATE_LIMITS.maxBurstSize,
        maxConcurrentDispatches: input.rateLimits?.maxConcurrentDispatches || DEFAULT_RATE_LIMITS.maxConcurrentDispatches
      },
      retryConfig: {
        maxAttempts: retry.maxAttempts || DEFAULT_RETRY.maxAttempts,
        maxRetryDuration: retry.maxRetryDuration ?? DEFAULT_RETRY.maxRetryDuration,
        minBackoff: retry.minBackoff ?? DEFAULT_RETRY.minBackoff,
        maxBackoff: retry.maxBackoff ?? DEFAULT_RETRY.maxBackoff,
        maxDoublings: retry.maxDoublings || DEFAULT_RETRY.maxDoublings
      },
      state: 'RUNNING'
    }
    if (durationMs(queue.retryConfig.minBackoff) > durationMs(queue.retryConfig.maxBackoff)) {
      throw invalidArgument('retry_config.min_backoff must not exceed retry_config.max_backoff.')
    }
    this.#queues.set(queueName, queue)
    return structuredClone(queue)
  }

  getQueue (name: string): Queue {
    return structuredClone(this.#requireQueue(parseQueueName(name).queueName))
  }

  createTask (parent: string, input: TaskInput | undefined, view: TaskView): Task {
    const { queueName, queue: queueId } = parseQueueName(parent)
    this.#requireQueue(queueName)
    if (!input) throw invalidArgument('CreateTaskRequest.task is required.')
    const name = this.#newTaskName(queueName, input.name)
    const now = Date.now()
    const scheduleMs = input.scheduleTime ? Math.max(Date.parse(input.scheduleTime), now) : now
    if (scheduleMs - now > MAX_SCHEDULE_AHEAD_MS) throw invalidArgument('Task.schedule_time must be at most 30 days in the future.')
    const deadlineMs = input.dispatchDeadline ? durationMs(input.dispatchDeadline) : DEADLINE.defaultMs
    if (deadlineMs < DEADLINE.minMs || deadlineMs > DEADLINE.maxMs) {
      throw invalidArgument(`Task.dispatch_deadline must be between 15s and 1800s for HTTP tasks, got ${input.dispatchDeadline}.`)
    }
    const task: Task = {
      name,
      httpRequest: httpRequestOf(input),
      scheduleTime: new Date(scheduleMs).toISOString(),
      // "create_time will be truncated to the nearest second"
      createTime: new Date(Math.floor(now / 1000) * 1000).toISOString(),
      dispatchDeadline: msDuration(deadlineMs),
      dispatchCount: 0,
      responseCount: 0,
      view: 'FULL'
    }
    const record: TaskRecord = { task, queueId, handlerAnswers: 0, waiters: [] }
    this.#tasks.set(name, record)
    this.#ended.delete(name)
    this.#arm(record)
    return viewOf(task, view)
  }

  getTask (name: string, view: TaskView): Task {
    return viewOf(this.#requireTask(name).task, view)
  }

  deleteTask (name: string): void {
    this.#end(this.#requireTask(name), 'deleted')
  }

  /** The queue's tasks, soonest first (Google promises no order). */
  listTasks (parent: string, view: TaskView): Task[] {
    const { queueName } = parseQueueName(parent)
    this.#requireQueue(queueName)
    return [...this.#tasks.values()]
      .filter(record => record.task.name.startsWith(`${queueName}/tasks/`))
      .map(record => record.task)
      .sort((a, b) => a.scheduleTime.localeCompare(b.scheduleTime) || a.name.localeCompare(b.name))
      .map(task => viewOf(task, view))
  }

  /** RunTask: dispatches now, whatever the schedule time; a task whose attempt is under way is left to it. */
  runTask (name: string, view: TaskView): Task {
    const record = this.#requireTask(name)
    if (!record.inFlight) {
      record.task.scheduleTime = new Date().toISOString()
      this.#arm(record)
    }
    return viewOf(record.task, view)
  }

  queues (): Queue[] {
    return [...this.#queues.values()].map(queue => structuredClone(queue))
  }

  tasks (): Task[] {
    return [...this.#tasks.values()].map(record => copyTask(record.task))
  }

  deliveries (): TaskDelivery[] {
    return this.#deliveries.map(delivery => ({
      ...delivery, headers: { ...delivery.headers }, ...(delivery.body ? { body: Buffer.from(delivery.body) } : {})
    }))
  }

  /** Resolves once the task has succeeded, used up its retries or been deleted. */
  waitForTask (name: string): Promise<TaskEnd> {
    const record = this.#tasks.get(name)
    if (record) return new Promise(resolve => record.waiters.push(resolve))
    const ended = this.#ended.get(name)
    if (ended) return Promise.resolve({ ...ended, task: copyTask(ended.task) })
    return Promise.reject(new Error(`No task ${name} was ever created.`))
  }

  /** Stops every timer and abandons the attempts under way. */
  close (): void {
    this.#closed = true
    for (const record of this.#tasks.values()) {
      clearTimeout(record.timer)
      record.inFlight?.abort()
    }
  }

  #newTaskName (queueName: string, requested: string | undefined): string {
    if (!requested) {
      let name: string
      do name = `${queueName}/tasks/${generatedTaskId()}`
      while (this.#tasks.has(name) || this.#takenUntil.has(name))
      return name
    }
    const parsed = parseTaskName(requested)
    if (parsed.queueName !== queueName) throw invalidArgument(`Task name '${requested}' is not in the queue '${queueName}'.`)
    // Naming a task is what de-duplicates it: a live task, or one finished or deleted within the window, holds the name.
    if (this.#tasks.has(requested) || this.#nameTaken(requested)) throw alreadyExists('Requested entity already exists')
    return requested
  }

  #nameTaken (name: string): boolean {
    const until = this.#takenUntil.get(name)
    if (until === undefined) return false
    if (until > Date.now()) return true
    this.#takenUntil.delete(name)
    return false
  }

  #requireQueue (queueName: string): Queue {
    const queue = this.#queues.get(queueName)
    if (!queue) throw notFound(QUEUE_MISSING)
    return queue
  }

  #requireTask (name: string): TaskRecord {
    const { queueName } = parseTaskName(name)
    this.#requireQueue(queueName)
    const record = this.#tasks.get(name)
    if (record) return record
    throw notFound(this.#nameTaken(name) ? TASK_GONE : 'Requested entity was not found.')
  }

  #arm (record: TaskRecord): void {
    clearTimeout(record.timer)
    if (this.#closed) return
    const due = Date.parse(record.task.scheduleTime)
    // Timers can wake a millisecond early, and cannot wait longer than ~24.8 days: wake, check, sleep again.
    record.timer = setTimeout(() => {
      if (Date.now() < due) this.#arm(record)
      else void this.#dispatch(record)
    }, Math.min(Math.max(due - Date.now(), 0), MAX_TIMER_MS))
  }

  async #dispatch (record: TaskRecord): Promise<void> {
    const { task } = record
    const queue = this.#queues.get(parseTaskName(task.name).queueName)
    if (!queue || this.#tasks.get(task.name) !== record) return
    const dispatchTime = new Date().toISOString()
    const attempt: Attempt = { scheduleTime: task.scheduleTime, dispatchTime }
    const request = outgoingRequest(task.httpRequest, {
      queueId: record.queueId,
      taskId: parseTaskName(task.name).task,
      scheduleTime: task.scheduleTime,
      retryCount: task.dispatchCount,
      executionCount: record.handlerAnswers,
      previousResponse: record.previousResponse,
      authorization: this.#authorization(task.httpRequest)
    })
    task.dispatchCount++
    task.firstAttempt ??= { dispatchTime }
    task.lastAttempt = attempt
    const delivery: TaskDelivery = { task: task.name, ...request, dispatchTime }
    this.#deliveries.push(delivery)
    record.inFlight = new AbortController()
    const deadlineMs = Math.min(durationMs(task.dispatchDeadline), this.#options.dispatchDeadlineCapMs ?? Infinity)
    const result = await sendAttempt(request, deadlineMs, record.inFlight.signal)
    record.inFlight = undefined
    // Deleted (or the emulator closed) while the worker was answering: the answer goes nowhere.
    if (this.#tasks.get(task.name) !== record || this.#closed) return
    attempt.responseTime = new Date().toISOString()
    attempt.responseStatus = result.rpcStatus
    if ('status' in result) {
      delivery.status = result.status
      task.responseCount++
      record.previousResponse = result.status
      if (result.status < 500) record.handlerAnswers++
      if (result.status >= 200 && result.status < 300) {
        this.#end(record, 'succeeded')
        return
      }
    } else {
      delivery.error = result.error
    }
    const firstDispatch = Date.parse(task.firstAttempt.dispatchTime ?? dispatchTime)
    if (retriesExhausted(queue.retryConfig, task.dispatchCount, firstDispatch, Date.now())) {
      this.#end(record, 'exhausted')
      return
    }
    task.scheduleTime = new Date(Date.now() + retryDelayMs(queue.retryConfig, task.dispatchCount - 1)).toISOString()
    this.#arm(record)
  }

  /** `Bearer <ID token>` for the task's service account; the audience defaults to the task's URL. */
  #authorization (request: HttpRequest): string | undefined {
    const oidc = request.oidcToken
    if (!oidc) return undefined
    return `Bearer ${this.#options.issuer.mint({ email: oidc.serviceAccountEmail, audience: oidc.audience || request.url })}`
  }

  #end (record: TaskRecord, outcome: TaskEnd['outcome']): void {
    clearTimeout(record.timer)
    const { name } = record.task
    this.#tasks.delete(name)
    this.#takenUntil.set(name, Date.now() + this.#options.dedupWindowMs)
    const end: TaskEnd = { task: record.task, outcome }
    this.#ended.set(name, end)
    for (const resolve of record.waiters.splice(0)) resolve({ outcome, task: copyTask(end.task) })
  }
}

function httpRequestOf (input: TaskInput): HttpRequest {
  if (input.appEngineHttpRequest) {
    throw unimplemented('The emulator delivers HTTP tasks only (http_request); app_engine_http_request is not supported.')
  }
  const request = input.httpRequest
  if (!request) throw invalidArgument('Task.message_type is required: set http_request.')
  if (request.oauthToken) {
    throw unimplemented('The emulator mints OIDC tokens only; http_request.oauth_token is not supported.')
  }
  const url = request.url ?? ''
  if (!/^https?:\/\//.test(url) || !URL.canParse(url)) {
    throw invalidArgument(`HttpRequest.url must be an absolute http:// or https:// URL, got '${url}'.`)
  }
  if (url.length > MAX_URL_LENGTH) throw invalidArgument(`HttpRequest.url must be at most ${MAX_URL_LENGTH} characters.`)
  const httpMethod = !request.httpMethod || request.httpMethod === 'HTTP_METHOD_UNSPECIFIED' ? 'POST' : request.httpMethod
  const body = request.body?.length ? Buffer.from(request.body) : undefined
  if (body && !BODY_METHODS.has(httpMethod)) {
    throw invalidArgument(`HttpRequest.body is only allowed with POST, PUT or PATCH, not ${httpMethod}.`)
  }
  const headers = request.headers ?? {}
  if (Object.entries(headers).reduce((bytes, [k, v]) => bytes + k.length + v.length, 0) >= MAX_HEADERS_BYTES) {
    throw invalidArgument('HttpRequest.headers must total less than 80KB.')
  }
  const oidc = request.oidcToken
  if (oidc && !oidc.serviceAccountEmail) throw invalidArgument('OidcToken.service_account_email is required.')
  return {
    url,
    httpMethod,
    ...(Object.keys(headers).length ? { headers: { ...headers } } : {}),
    ...(body ? { body } : {}),
    ...(oidc ? { oidcToken: { serviceAccountEmail: oidc.serviceAccountEmail, ...(oidc.audience ? { audience: oidc.audience } : {}) } } : {})
  }
}

/** The BASIC view (the default) leaves out the body, "large or sensitive"; FULL has everything. */
function viewOf (task: Task, view: TaskView): Task {
  const copy = copyTask(task)
  copy.view = view
  if (view === 'BASIC') delete copy.httpRequest.body
  return copy
}

/** structuredClone turns a Buffer into a plain Uint8Array; the body stays a Buffer. */
function copyTask (task: Task): Task {
  const copy = structuredClone(task)
  if (task.httpRequest.body) copy.httpRequest.body = Buffer.from(task.httpRequest.body)
  return copy
}
