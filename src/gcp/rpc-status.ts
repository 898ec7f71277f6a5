// google.rpc.Code by name. Google's clients report a failed call's status as this number; every
// decision pushpool makes on one names the status instead of repeating the number.

export const RpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16
} as const

export type RpcStatusName = keyof typeof RpcStatus

const NAMES = new Map<number, RpcStatusName>(Object.entries(RpcStatus).map(([name, code]) => [code, name as RpcStatusName]))

/** The status a Google client put on a failed call, or null for a failure without one (a bug, a transport error). */
export function rpcStatusOf (err: unknown): number | null {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'number' ? code : null
}

export function rpcStatusName (code: number | null): string {
  return code === null ? 'no status' : NAMES.get(code) ?? `status ${code}`
}
