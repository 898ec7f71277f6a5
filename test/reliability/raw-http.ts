// HTTP at the socket level, for what inject() and fetch() cannot send: oversized headers, bytes
// that are not UTF-8, paths a client would normalise, bodies that trickle in. Plus a recording
// proxy that shows which requests pushpool made to Prefect.
import { connect } from 'node:net'
import { createServer, request as httpRequest, type Server } from 'node:http'

export interface RawResponse {
  status: number | null
  headers: string
  body: string
  /** ms from connect until the server closed the connection (or the deadline). */
  closedAfterMs: number
  closedByServer: boolean
}

export interface RawOptions {
  /** Bytes written after the head, one chunk every `trickleMs`, until the server closes. */
  trickle?: { chunk: string, everyMs: number }
  /** Give up (and destroy the socket) after this long. */
  deadlineMs?: number
  /** Wait this long after connecting, then write `then` (after `head`, which may be empty). */
  delayMs?: number
  then?: string
}

/** Writes `head` as is, then optionally trickles more, and reads until the server closes. */
export function rawRequest (port: number, head: string | Buffer, options: RawOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const chunks: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    let deadline: NodeJS.Timeout | undefined
    let byServer = true
    const socket = connect(port, '127.0.0.1', () => {
      if (head.length > 0) socket.write(head)
      if (options.then !== undefined) {
        const rest = options.then
        setTimeout(() => { if (!socket.destroyed) socket.write(rest) }, options.delayMs ?? 0)
      }
      if (options.trickle !== undefined) {
        const { chunk, everyMs } = options.trickle
        timer = setInterval(() => { if (!socket.destroyed && socket.writable) socket.write(chunk) }, everyMs)
      }
    })
    deadline = setTimeout(() => { byServer = false; socket.destroy() }, options.deadlineMs ?? 60_000)
    socket.on('data', chunk => chunks.push(chunk))
    socket.on('error', err => {
      // A reset after the server answered is how Node ends a connection it gave up on.
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' && (err as NodeJS.ErrnoException).code !== 'EPIPE') reject(err)
    })
    socket.on('close', () => {
      clearInterval(timer)
      clearTimeout(deadline)
      deadline = undefined
      const text = Buffer.concat(chunks).toString('utf8')
      const [headers, ...rest] = text.split('\r\n\r\n')
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(headers)?.[1]
      resolve({
        status: status === undefined ? null : Number(status),
        headers,
        body: rest.join('\r\n\r\n'),
        closedAfterMs: Date.now() - started,
        closedByServer: byServer
      })
    })
  })
}

export interface RecordingProxy {
  /** The proxy's URL with the upstream's path, e.g. http://127.0.0.1:PORT/api */
  url: string
  /** `METHOD /path` of every request seen, in order, with the upstream's path prefix removed. */
  requests: string[]
  /**
   * When set: `true` answers the request 503 without forwarding it; `'after'` forwards it (so it
   * takes effect) and then answers 503 anyway, as when a reply is lost.
   */
  fail: ((request: string) => boolean | 'after') | null
  close: () => Promise<void>
}

/** Forwards every request to `upstream` unchanged and records it. */
export async function recordingProxy (upstream: string): Promise<RecordingProxy> {
  const target = new URL(upstream)
  const prefix = target.pathname.replace(/\/+$/, '')
  const requests: string[] = []
  const proxy: RecordingProxy = { url: '', requests, fail: null, close: async () => {} }
  const server: Server = createServer((req, res) => {
    const path = req.url ?? ''
    const seen = `${req.method ?? ''} ${path.startsWith(prefix) ? path.slice(prefix.length) : path}`
    requests.push(seen)
    const failure = proxy.fail?.(seen) ?? false
    if (failure === true) {
      req.resume()
      res.writeHead(503, { 'content-type': 'application/json' })
      res.end('{"detail":"injected by the test proxy"}')
      return
    }
    const forward = httpRequest({ host: target.hostname, port: target.port, method: req.method, path, headers: { ...req.headers, host: target.host } },
      upstreamRes => {
        if (failure === 'after') {
          upstreamRes.resume()
          upstreamRes.on('end', () => {
            res.writeHead(503, { 'content-type': 'application/json' })
            res.end('{"detail":"injected by the test proxy after the request took effect"}')
          })
          return
        }
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers)
        upstreamRes.pipe(res)
      })
    forward.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end() })
    req.pipe(forward)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  proxy.url = `http://127.0.0.1:${port}${prefix}`
  proxy.close = () => new Promise(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  return proxy
}

/** Makes the proxy refuse (503) the first `times` requests that are `request` exactly; returns how many it has refused so far. */
export function refuseFirst (proxy: RecordingProxy, request: string, times: number): () => number {
  let refused = 0
  proxy.fail = seen => {
    if (seen !== request || refused === times) return false
    refused++
    return true
  }
  return () => refused
}
