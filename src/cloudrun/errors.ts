// Google API errors → the dispatcher's two failure types. The Cloud Run clients never retry by
// themselves (every method is configured non-idempotent), so this table decides every retry.
import { NeverRetry, RetryLater } from '../failures.ts'

// gRPC status codes (google.rpc.Code).
const TRANSIENT = new Map<number, string>([
  [4, 'DEADLINE_EXCEEDED'],
  [8, 'RESOURCE_EXHAUSTED'],
  [10, 'ABORTED'],
  [13, 'INTERNAL'],
  [14, 'UNAVAILABLE']
])
const PERMANENT = new Map<number, string>([
  [3, 'INVALID_ARGUMENT'],
  [5, 'NOT_FOUND'],
  [6, 'ALREADY_EXISTS'],
  [7, 'PERMISSION_DENIED'],
  [9, 'FAILED_PRECONDITION'],
  [11, 'OUT_OF_RANGE'],
  [12, 'UNIMPLEMENTED'],
  [16, 'UNAUTHENTICATED']
])

export class CloudRunUnavailable extends RetryLater {
  readonly grpcCode: number | null
  constructor (message: string, grpcCode: number | null, options?: { cause?: unknown }) {
    super(message, options)
    this.grpcCode = grpcCode
  }
}

export class CloudRunRejected extends NeverRetry {
  readonly grpcCode: number
  constructor (message: string, grpcCode: number, options?: { cause?: unknown }) {
    super(message, options)
    this.grpcCode = grpcCode
  }
}

export function grpcCodeOf (err: unknown): number | null {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'number' ? code : null
}

const HINTS: Record<number, string> = {
  3: 'check the work pool\'s job template and job variables',
  5: 'check the region and project in the pool\'s job variables and credentials',
  7: 'grant pushpool\'s service account Cloud Run Developer, and Service Account User on the job\'s service account',
  16: 'check the GCP credentials'
}

/** `method` is the RPC name, e.g. RunJob; the message carries Google's own words plus a hint. */
export function classifyGoogleError (method: string, err: unknown): CloudRunUnavailable | CloudRunRejected {
  const code = grpcCodeOf(err)
  const raw = err instanceof Error ? err.message : String(err)
  // The client refused to encode the request: no retry can change that.
  if (/serialization failure/i.test(raw)) {
    return new CloudRunRejected(`Cloud Run ${method} request cannot be encoded: ${raw} (check the work pool's job template)`, code ?? 3, { cause: err })
  }
  if (code !== null && PERMANENT.has(code)) {
    const hint = HINTS[code]
    return new CloudRunRejected(`Cloud Run ${method} failed: ${raw}${hint !== undefined ? ` (${hint})` : ''}`, code, { cause: err })
  }
  // Unknown codes and transport errors without a code are treated as transient: retrying is
  // safe because every retry first checks whether an execution already appeared.
  const name = code === null ? 'no status' : TRANSIENT.get(code) ?? `code ${code}`
  return new CloudRunUnavailable(`Cloud Run ${method} failed (${name}): ${raw}`, code, { cause: err })
}
