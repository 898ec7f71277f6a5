// A Pub/Sub push of Cloud Run's System Event audit entry for a job execution (docs/execution-end-
// push.md) → the execution it names. Framework-agnostic, like payload.ts: a refusal is a value with
// its code from the error table. The entry is only a hint: the caller reads the execution itself
// before acting, so a duplicate, a reordered push or an entry of another kind is harmless.
import type { ErrorCode } from '../errors.ts'

export interface PushedExecution {
  /** `locations/<l>/jobs/<j>/executions/<e>`: the tail of the execution's resource name. */
  tail: string
  /** What the entry says of the end (Cloud Run's own status message), for the log. */
  status: string | null
}

export type ParsedPush =
  | { ok: true, execution: PushedExecution }
  /** A well-formed push of an entry that is not a job execution's end: acknowledged and ignored. */
  | { ok: true, ignored: string }
  | { ok: false, code: Extract<ErrorCode, 'PUSH_INVALID_MESSAGE'>, message: string }

const NAME_PART = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

export function parseExecutionEndPush (body: unknown): ParsedPush {
  const data = field(field(body, 'message'), 'data')
  if (typeof data !== 'string' || data === '') return refuse('the body is not a Pub/Sub push: message.data (base64) is missing')
  let entry: unknown
  try {
    entry = JSON.parse(Buffer.from(data, 'base64').toString('utf8'))
  } catch {
    return refuse('message.data is not base64 of a JSON log entry: point the push subscription at the log sink\'s topic')
  }
  const resource = field(entry, 'resource')
  if (field(resource, 'type') !== 'cloud_run_job') return { ok: true, ignored: 'not a Cloud Run job entry' }
  const payload = field(entry, 'protoPayload')
  if (field(payload, 'methodName') !== '/Jobs.RunJob') return { ok: true, ignored: 'not a job execution\'s end (/Jobs.RunJob)' }
  const labels = field(resource, 'labels')
  const location = field(labels, 'location')
  const job = field(labels, 'job_name')
  const resourceName = field(payload, 'resourceName')
  const execution = field(field(entry, 'labels'), 'run.googleapis.com/execution_name') ??
    (typeof resourceName === 'string' ? resourceName.split('/').at(-1) : undefined)
  if (![location, job, execution].every(part => typeof part === 'string' && NAME_PART.test(part))) {
    return refuse('the entry does not name its execution: resource.labels.location and job_name, and the execution_name label, are expected')
  }
  const status = field(field(payload, 'status'), 'message')
  return {
    ok: true,
    execution: { tail: `locations/${location as string}/jobs/${job as string}/executions/${execution as string}`, status: typeof status === 'string' ? status.slice(0, 500) : null }
  }
}

function field (value: unknown, name: string): unknown {
  return value !== null && typeof value === 'object' && Object.hasOwn(value, name) ? (value as Record<string, unknown>)[name] : undefined
}

function refuse (message: string): ParsedPush {
  return { ok: false, code: 'PUSH_INVALID_MESSAGE', message }
}
