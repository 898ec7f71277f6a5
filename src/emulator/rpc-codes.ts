// google.rpc.Code and its HTTP mapping, both ways (https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto,
// https://cloud.google.com/apis/design/errors#http_mapping). Several codes share an HTTP status; the one
// marked canonical is what that status maps back to (500 → INTERNAL, as Cloud Tasks records it).
const CODES: Array<{ code: number, name: string, http: number, canonical?: true }> = [
  { code: 1, name: 'CANCELLED', http: 499, canonical: true },
  { code: 2, name: 'UNKNOWN', http: 500 },
  { code: 3, name: 'INVALID_ARGUMENT', http: 400, canonical: true },
  { code: 4, name: 'DEADLINE_EXCEEDED', http: 504, canonical: true },
  { code: 5, name: 'NOT_FOUND', http: 404, canonical: true },
  { code: 6, name: 'ALREADY_EXISTS', http: 409 },
  { code: 7, name: 'PERMISSION_DENIED', http: 403, canonical: true },
  { code: 8, name: 'RESOURCE_EXHAUSTED', http: 429, canonical: true },
  { code: 9, name: 'FAILED_PRECONDITION', http: 400 },
  { code: 10, name: 'ABORTED', http: 409, canonical: true },
  { code: 11, name: 'OUT_OF_RANGE', http: 400 },
  { code: 12, name: 'UNIMPLEMENTED', http: 501, canonical: true },
  { code: 13, name: 'INTERNAL', http: 500, canonical: true },
  { code: 14, name: 'UNAVAILABLE', http: 503, canonical: true },
  { code: 15, name: 'DATA_LOSS', http: 500 },
  { code: 16, name: 'UNAUTHENTICATED', http: 401, canonical: true }
]

export interface RpcCode {
  code: number
  name: string
  http: number
}

/** The code's name and HTTP status; an unknown code is UNKNOWN / 500. */
export function rpcCode (code: number): RpcCode {
  return CODES.find(entry => entry.code === code) ?? { code: 2, name: 'UNKNOWN', http: 500 }
}

/** The code an HTTP status stands for: OK for 2xx; else its canonical code, or UNKNOWN for other 5xx and FAILED_PRECONDITION for other 4xx. */
export function rpcCodeOfHttp (status: number): RpcCode {
  if (status >= 200 && status < 300) return { code: 0, name: 'OK', http: status }
  return CODES.find(entry => entry.http === status && entry.canonical) ?? rpcCode(status >= 500 ? 2 : 9)
}
