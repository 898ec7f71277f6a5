// A small keep-alive HTTP client for the load the bench generates. node:http with a bounded agent
// costs the bench process less CPU than fetch at hundreds of requests per second, and the bench
// shares two cores with pushpool.
import { Agent, request } from 'node:http'

export interface HttpReply {
  status: number
  body: string
}

export class HttpClient {
  readonly baseUrl: URL
  private readonly agent: Agent

  constructor (baseUrl: string, maxSockets = 256) {
    this.baseUrl = new URL(baseUrl)
    this.agent = new Agent({ keepAlive: true, maxSockets })
  }

  send (method: string, path: string, headers: Record<string, string> = {}, body?: string, timeoutMs = 30_000): Promise<HttpReply> {
    return new Promise((resolve, reject) => {
      const req = request({
        host: this.baseUrl.hostname,
        port: this.baseUrl.port,
        method,
        path,
        agent: this.agent,
        headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs
      }, res => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)))
      req.on('error', reject)
      req.end(body)
    })
  }

  /** Closes kept-alive sockets, so a burst after a pause does not race the server's keep-alive timeout. */
  dropIdleSockets (): void {
    this.agent.destroy()
  }

  close (): void {
    this.agent.destroy()
  }
}

/** One GET without keep-alive: what a readiness probe does. Resolves to the status, or 0 if refused. */
export function probe (url: string, timeoutMs = 2000): Promise<number> {
  return new Promise(resolve => {
    const req = request(url, { agent: false, timeout: timeoutMs }, res => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => { req.destroy(); resolve(0) })
    req.on('error', () => resolve(0))
    req.end()
  })
}
