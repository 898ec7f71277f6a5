// JSON over HTTP/1.1 on kept-alive connections, for the Prefect adapter. node:http rather than
// fetch: on loopback, fetch (undici with web streams and AbortSignal timers) cost ~0.5 ms of CPU a
// request and node:http ~0.25 ms, and every dispatch makes five Prefect calls.
import http from 'node:http'

export interface HttpReply {
  status: number
  text: string
  /** The Location header of a redirect, which is not followed. */
  location: string | null
}

/** No reply came: the connection failed, or the time ran out before the reply began. */
export class HttpNoReply extends Error {
  readonly timedOut: boolean
  constructor (message: string, timedOut: boolean, options?: { cause?: unknown }) {
    super(message, options)
    this.timedOut = timedOut
  }
}

/** The reply began, but its body did not arrive whole (the time ran out, or the peer hung up). */
export class HttpCutOff extends Error {}

/**
 * Idle connections are dropped after this long: below uvicorn's 5 s keep-alive (Prefect's server),
 * so pushpool does not send on a connection the server is closing.
 */
const IDLE_MS = 4000
/** Codes of a kept-alive connection the server closed as the request went out: nothing was read. */
const STALE_CONNECTION = new Set(['ECONNRESET', 'EPIPE'])

/** A scheme's request function and its pool of kept-alive connections. */
interface Transport {
  request: typeof http.request
  agent: http.Agent
}

export class KeepAliveHttp {
  private readonly timeoutMs: number
  private readonly transports = new Map<string, Transport>()

  constructor (timeoutMs: number) {
    this.timeoutMs = timeoutMs
  }

  /** One exchange within the timeout; a request that met a connection closing under it is sent once more. */
  async send (url: string, method: string, headers: Record<string, string>, body?: string): Promise<HttpReply> {
    try {
      return await this.exchange(url, method, headers, body)
    } catch (err) {
      if (!(err instanceof StaleConnection)) throw err
      return await this.exchange(url, method, headers, body)
    }
  }

  close (): void {
    for (const { agent } of this.transports.values()) agent.destroy()
  }

  /**
   * node:https is loaded with the first https URL, not at start-up: it loads TLS, which a Prefect
   * server reached over plain http never needs (Fastify's own require of it is deferred by the build).
   */
  private transport (protocol: string): Transport {
    let transport = this.transports.get(protocol)
    if (transport === undefined) {
      const module = protocol === 'https:' ? process.getBuiltinModule('node:https') : http
      transport = { request: module.request, agent: new module.Agent({ keepAlive: true, timeout: IDLE_MS }) }
      this.transports.set(protocol, transport)
    }
    return transport
  }

  private exchange (url: string, method: string, headers: Record<string, string>, body?: string): Promise<HttpReply> {
    const target = new URL(url)
    const { request: send, agent } = this.transport(target.protocol === 'https:' ? 'https:' : 'http:')
    return new Promise((resolve, reject) => {
      let replied = false
      const request = send(target, {
        method,
        agent,
        headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) }
      }, response => {
        replied = true
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () => {
          clearTimeout(timer)
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), location: response.headers.location ?? null })
        })
        response.on('close', () => {
          if (!response.complete) fail(new HttpCutOff(`the reply from ${target.host} was cut off`))
        })
        // The peer hanging up mid-body also ends in 'close' (incomplete), which rejects.
        response.on('error', () => {})
      })
      const fail = (err: Error): void => {
        clearTimeout(timer)
        request.destroy()
        reject(err)
      }
      const timer = setTimeout(() => {
        fail(replied
          ? new HttpCutOff(`the reply from ${target.host} did not arrive within ${this.timeoutMs} ms`)
          : new HttpNoReply(`no reply from ${target.host} within ${this.timeoutMs} ms`, true))
      }, this.timeoutMs)
      request.on('error', err => {
        if (replied) return
        const code = (err as NodeJS.ErrnoException).code ?? ''
        if (request.reusedSocket && STALE_CONNECTION.has(code)) fail(new StaleConnection(err.message, false, { cause: err }))
        else fail(new HttpNoReply(`${target.host} is unreachable: ${err.message}`, false, { cause: err }))
      })
      request.end(body)
    })
  }
}

class StaleConnection extends HttpNoReply {}
