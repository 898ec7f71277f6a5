// One delivery attempt of a Cloud Tasks HTTP task, made as Cloud Tasks makes it, and the backoff
// before the next one. What is sent follows
// https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler and the HttpRequest comments
// of google/cloud/tasks/v2/target.proto; the backoff follows the RetryConfig comments of queue.proto.
import { durationMs } from './durations.ts'
import { send, type OutgoingRequest } from './outbound-http.ts'
import { rpcCodeOfHttp } from './rpc-codes.ts'
import type { HttpRequest, RetryConfig, RpcStatus } from './types.ts'

export interface AttemptContext {
  queueId: string
  taskId: string
  /** Seconds since the epoch, as X-CloudTasks-TaskETA carries the schedule time */
  scheduleTime: string
  /** Attempts dispatched before this one */
  retryCount: number
  /** Earlier attempts the handler answered with something other than a 5xx */
  executionCount: number
  /** The HTTP status of the previous attempt, if it got one */
  previousResponse?: number
  /** `Bearer <ID token>` when the task has an oidc_token */
  authorization?: string
}

export type AttemptResult =
  | { status: number, rpcStatus: RpcStatus }
  | { error: string, rpcStatus: RpcStatus }

/** Headers Cloud Tasks computes or reserves, whatever the task says. */
const REPLACED = /^(host|content-length|user-agent|x-google-.*|x-appengine-.*|x-cloudtasks-.*)$/i

export function outgoingRequest (request: HttpRequest, context: AttemptContext): OutgoingRequest {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    // An OIDC token overrides the task's own Authorization header; without one, that header is sent as is.
    const overridden = context.authorization !== undefined && name.toLowerCase() === 'authorization'
    if (!REPLACED.test(name) && !overridden) headers[name] = value
  }
  Object.assign(headers, {
    'User-Agent': 'Google-Cloud-Tasks',
    'X-CloudTasks-QueueName': context.queueId,
    'X-CloudTasks-TaskName': context.taskId,
    'X-CloudTasks-TaskRetryCount': String(context.retryCount),
    'X-CloudTasks-TaskExecutionCount': String(context.executionCount),
    'X-CloudTasks-TaskETA': (Date.parse(context.scheduleTime) / 1000).toFixed(6),
    ...(context.previousResponse === undefined ? {} : { 'X-CloudTasks-TaskPreviousResponse': String(context.previousResponse) }),
    ...(context.authorization ? { Authorization: context.authorization } : {})
  })
  return { url: request.url, method: request.httpMethod, headers, ...(request.body?.length ? { body: request.body } : {}) }
}

/** One attempt, and the google.rpc.Status Cloud Tasks records for it. */
export async function sendAttempt (request: OutgoingRequest, deadlineMs: number, cancelled: AbortSignal): Promise<AttemptResult> {
  const result = await send(request, deadlineMs, cancelled)
  if ('status' in result) return { status: result.status, rpcStatus: httpStatus(result.status) }
  if (result.deadlineExceeded) {
    return { error: result.error, rpcStatus: { code: 4, message: 'DEADLINE_EXCEEDED(4): The request deadline was exceeded.' } }
  }
  return { error: result.error, rpcStatus: { code: 14, message: `UNAVAILABLE(14): ${result.error}` } }
}

/**
 * The wait before retry number `retry` (0 for the first retry): min_backoff, doubled max_doublings
 * times, then growing linearly by 2^max_doublings × min_backoff, never above max_backoff. With 10s,
 * 300s and 3 doublings: 10s, 20s, 40s, 80s, 160s, 240s, 300s, 300s, … as queue.proto documents.
 */
export function retryDelayMs (config: RetryConfig, retry: number): number {
  const min = durationMs(config.minBackoff)
  const doublings = config.maxDoublings
  const interval = retry < doublings ? min * 2 ** retry : min * 2 ** doublings * (retry - doublings + 1)
  return Math.min(interval, durationMs(config.maxBackoff))
}

/** Whether a failed task is done with: max_attempts reached AND max_retry_duration passed (both, as documented). */
export function retriesExhausted (config: RetryConfig, dispatchCount: number, firstDispatchMs: number, now: number): boolean {
  const attemptsDone = config.maxAttempts !== -1 && dispatchCount >= config.maxAttempts
  const age = durationMs(config.maxRetryDuration)
  return attemptsDone && (age === 0 || now - firstDispatchMs >= age)
}

/** A worker's HTTP status as the google.rpc.Status Cloud Tasks records, e.g. "INTERNAL(13): HTTP status code 500". */
export function httpStatus (status: number): RpcStatus {
  const { code, name } = rpcCodeOfHttp(status)
  return { code, message: `${name}(${code}): HTTP status code ${status}` }
}
