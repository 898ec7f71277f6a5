// What a failed Cloud Run call means, decided once, here. The Cloud Run clients never retry by
// themselves (every method is configured non-idempotent), so this table decides every retry, every
// "an execution may exist", and every "it is gone already". Callers switch on `kind`; none reads
// a status number.
import { NeverRetry, RetryLater } from '../failures.ts'
import { RpcStatus, rpcStatusName, rpcStatusOf } from '../gcp/rpc-status.ts'

export type CloudRunMethod = 'CreateJob' | 'GetJob' | 'RunJob' | 'DeleteJob' | 'GetExecution' | 'ListExecutions' | 'CancelExecution'

/** A call that may succeed later: an outage, a quota, a timeout. */
export class CloudRunUnavailable extends RetryLater {
  readonly status: number | null
  constructor (message: string, status: number | null, options?: { cause?: unknown, retryAt?: Date }) {
    super(message, options)
    this.status = status
  }
}

/** A call that will fail the same way however often it is made; its message says what to fix. */
export class CloudRunRejected extends NeverRetry {
  readonly status: number
  constructor (message: string, status: number, options?: { cause?: unknown }) {
    super(message, options)
    this.status = status
  }
}

/**
 * A failed call, classified. Every kind carries `error`, what to raise when the caller has no use
 * for the kind itself.
 * - `missing`: the job or execution named does not exist (NOT_FOUND).
 * - `exists`: CreateJob found the job already there (ALREADY_EXISTS), which is success.
 * - `ended`: CancelExecution found the execution over already.
 * - `quota`: Cloud Run refused for quota before acting: the call certainly did nothing.
 * - `transient`: may succeed if made again; the call itself may have been applied.
 * - `refused`: fails the same way whenever made.
 */
export type CallFailure =
  | { kind: 'missing' | 'exists' | 'ended' | 'refused', error: CloudRunRejected }
  | { kind: 'quota' | 'transient', error: CloudRunUnavailable }

const PERMANENT = new Set<number>([
  RpcStatus.INVALID_ARGUMENT, RpcStatus.NOT_FOUND, RpcStatus.ALREADY_EXISTS, RpcStatus.PERMISSION_DENIED,
  RpcStatus.FAILED_PRECONDITION, RpcStatus.OUT_OF_RANGE, RpcStatus.UNIMPLEMENTED, RpcStatus.UNAUTHENTICATED
])

const HINTS: Partial<Record<number, string>> = {
  [RpcStatus.INVALID_ARGUMENT]: 'check the work pool\'s job template and job variables',
  [RpcStatus.NOT_FOUND]: 'check the region and project in the pool\'s job variables and credentials',
  [RpcStatus.PERMISSION_DENIED]: 'grant the account pushpool launches as (the job variable impersonate_service_account, else pushpool\'s own) ' +
    'Cloud Run Developer, and Service Account User on the job\'s service account',
  [RpcStatus.UNAUTHENTICATED]: 'check the GCP credentials'
}

export function classifyFailure (method: CloudRunMethod, err: unknown): CallFailure {
  const status = rpcStatusOf(err)
  const raw = err instanceof Error ? err.message : String(err)
  // The client refused to encode the request: no retry can change that.
  if (/serialization failure/i.test(raw)) {
    return { kind: 'refused', error: new CloudRunRejected(`Cloud Run ${method} request cannot be encoded: ${raw} (check the work pool's job template)`, status ?? RpcStatus.INVALID_ARGUMENT, { cause: err }) }
  }
  // Every other status (DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE, and
  // ones unknown) and a failure without one are transient: retrying is safe because every retry of
  // a RunJob first looks for an execution the failed one may have made.
  if (status === null || !PERMANENT.has(status)) {
    const error = new CloudRunUnavailable(`Cloud Run ${method} failed (${rpcStatusName(status)}): ${raw}`, status, { cause: err })
    return { kind: status !== null && isQuotaRejection(status, err, raw) ? 'quota' : 'transient', error }
  }
  const hint = HINTS[status]
  const error = new CloudRunRejected(`Cloud Run ${method} failed: ${raw}${hint !== undefined ? ` (${hint})` : ''}`, status, { cause: err })
  if (status === RpcStatus.NOT_FOUND) return { kind: 'missing', error }
  if (status === RpcStatus.ALREADY_EXISTS && method === 'CreateJob') return { kind: 'exists', error }
  // Cloud Run answers a cancel of an execution that is over with FAILED_PRECONDITION.
  if (status === RpcStatus.FAILED_PRECONDITION && method === 'CancelExecution') return { kind: 'ended', error }
  return { kind: 'refused', error }
}

/**
 * Cloud Run refused the call for quota ("Quota exceeded for quota metric …", or an ErrorInfo
 * reason saying so), before acting on it. A bare RESOURCE_EXHAUSTED is not taken as one: the gRPC
 * client raises that status itself for a reply larger than it accepts, and that reply may describe
 * an execution that now exists.
 */
function isQuotaRejection (status: number, err: unknown, message: string): boolean {
  if (status !== RpcStatus.RESOURCE_EXHAUSTED) return false
  if ((err as { reason?: unknown } | null)?.reason === 'RATE_LIMIT_EXCEEDED') return true
  return /quota exceeded|rate limit exceeded/i.test(message)
}
