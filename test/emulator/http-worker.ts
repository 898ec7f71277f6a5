// A loopback HTTP server standing in for the service the emulator calls (a Cloud Tasks target, a
// Pub/Sub push endpoint): it records every request and answers as the test says.
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'

export interface ReceivedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  body: Buffer
  /** Date.now() when the request arrived */
  at: number
}

/** The status to answer with (with headers, if any); `'hang'` never answers (until the server closes). */
export type Answer = number | { status: number, headers: Record<string, string> } | 'hang'

export interface HttpWorker {
  url: string
  requests: ReceivedRequest[]
  /** Answers the n-th request (0-based) with answer(n, request); the default answers 200. */
  answer: (answer: (n: number, request: ReceivedRequest) => Answer) => void
  /** Resolves once `count` requests have arrived. */
  waitForRequests: (count: number) => Promise<ReceivedRequest[]>
}

export async function startHttpWorker (t: Test): Promise<HttpWorker> {
  const requests: ReceivedRequest[] = []
  let answerOf: (n: number, request: ReceivedRequest) => Answer = () => 200
  const waiters: Array<() => void> = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const request = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), at: Date.now() }
      const answer = answerOf(requests.length, request)
      requests.push(request)
      for (const wake of waiters.splice(0)) wake()
      if (answer === 'hang') return
      const { status, headers } = typeof answer === 'number' ? { status: answer, headers: {} } : answer
      res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(`answered ${status}`)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>(resolve => server.close(() => resolve()))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    answer: fn => { answerOf = fn },
    waitForRequests: async count => {
      while (requests.length < count) await new Promise<void>(resolve => waiters.push(resolve))
      return requests.slice(0, count)
    }
  }
}
