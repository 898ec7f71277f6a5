// Requests the emulator makes on Google's behalf (Cloud Tasks deliveries, Pub/Sub pushes), sent with
// node:http so the receiver sees exactly the headers Google sends and nothing a browser-minded fetch
// would add. A response of any status is an answer; none within the deadline, or no connection, is not.
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'

export interface OutgoingRequest {
  url: string
  method: string
  headers: Record<string, string>
  body?: Buffer
}

export type Exchange =
  | { status: number }
  /** No answer: 'deadline exceeded', or the connection error (ECONNREFUSED, …). */
  | { error: string, deadlineExceeded: boolean }

const REDIRECTS = new Set([301, 302, 303, 307, 308])
const MAX_REDIRECTS = 10

/** Sends the request, following redirects (which are part of the same attempt). */
export async function send (request: OutgoingRequest, deadlineMs: number, cancelled: AbortSignal): Promise<Exchange> {
  const deadline = AbortSignal.timeout(deadlineMs)
  const signal = AbortSignal.any([deadline, cancelled])
  let current = request
  try {
    for (let redirects = 0; ; redirects++) {
      const { status, location } = await exchange(current, signal)
      if (!location || !REDIRECTS.has(status) || redirects === MAX_REDIRECTS) return { status }
      current = redirected(current, status, location)
    }
  } catch (error) {
    if (deadline.aborted) return { error: 'deadline exceeded', deadlineExceeded: true }
    return { error: (error as { code?: string }).code ?? (error instanceof Error ? error.message : String(error)), deadlineExceeded: false }
  }
}

function exchange (request: OutgoingRequest, signal: AbortSignal): Promise<{ status: number, location?: string }> {
  const send = request.url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const headers = { ...request.headers, ...(request.body ? { 'Content-Length': String(request.body.length) } : {}) }
    const req = send(request.url, { method: request.method, headers, signal }, res => {
      // The answer's body is not kept, only read to its end so the socket is freed.
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(request.body)
  })
}

/** The next hop of a redirect: 307/308 repeat the request; 301/302/303 turn it into a GET without a body. */
function redirected (request: OutgoingRequest, status: number, location: string): OutgoingRequest {
  const url = new URL(location, request.url).toString()
  if (status === 307 || status === 308) return { ...request, url }
  const { body: _body, ...rest } = request
  return { ...rest, url, method: 'GET' }
}
