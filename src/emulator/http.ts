// The emulator's HTTP side: one loopback server for the REST APIs (OAuth2 certificates, Cloud
// Logging, IAM Credentials). Every route goes through the same CallPolicy as the gRPC methods, and
// errors are answered in Google's REST error shape, {error: {code, message, status}}, with the HTTP
// status of the gRPC code (rpc-codes.ts).
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { CallPolicy } from './faults.ts'
import { rpcCode } from './rpc-codes.ts'
import { invalidArgument, notFound, RpcError, unauthenticated } from './rpc-error.ts'

export interface HttpCall {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** The path's captures, in order. */
  params: string[]
  body: Buffer
}

export interface HttpAnswer {
  status?: number
  headers?: Record<string, string>
  /** A string is sent as is; anything else as JSON. */
  body: unknown
}

export interface Route {
  method: 'GET' | 'POST'
  path: RegExp
  /** The name calls are counted and faulted under (Emulator.calls, addFault). */
  name: string
  /** The service named in quota errors, e.g. 'logging.googleapis.com'. */
  service: string
  handle: (call: HttpCall) => HttpAnswer | Promise<HttpAnswer>
}

const BODY_LIMIT_BYTES = 10 * 1024 * 1024


export interface HttpSide {
  server: Server
  port: number
}

export async function startHttpSide (host: string, port: number, routes: Route[], policy: CallPolicy,
  onUnexpected: (route: string, error: unknown) => void): Promise<HttpSide> {
  const server = createServer((req, res) => {
    serve(req, res, routes, policy).catch((error: unknown) => {
      onUnexpected(`${req.method} ${req.url}`, error)
      if (!res.headersSent) sendError(res, new RpcError(13, error instanceof Error ? error.message : String(error)))
    })
  })
  server.listen(port, host)
  await once(server, 'listening')
  return { server, port: (server.address() as AddressInfo).port }
}

/** Google's JSON error body for a gRPC status code. */
export function errorBody (code: number, message: string, details?: object[]): { error: { code: number, message: string, status: string, details?: object[] } } {
  const { http, name } = rpcCode(code)
  return { error: { code: http, message, status: name, ...(details ? { details } : {}) } }
}

async function serve (req: IncomingMessage, res: ServerResponse, routes: Route[], policy: CallPolicy): Promise<void> {
  let path: string
  try {
    path = decodeURIComponent(new URL(req.url ?? '/', 'http://emulator').pathname)
  } catch {
    await drain(req)
    sendError(res, invalidArgument(`Invalid URL path '${req.url}'.`))
    return
  }
  let params: string[] | undefined
  const route = routes.find(candidate => {
    if (candidate.method !== req.method) return false
    params = candidate.path.exec(path)?.slice(1)
    return params !== undefined
  })
  if (!route || !params) {
    await drain(req)
    sendError(res, notFound(`The requested URL ${path} was not found on this server.`))
    return
  }
  let answer: HttpAnswer
  try {
    const body = await readBody(req)
    const call = { method: req.method ?? 'GET', path, headers: req.headers, params, body }
    answer = await policy.invoke(route.name, route.service, () => route.handle(call))
  } catch (error) {
    if (error instanceof RpcError) {
      sendError(res, error)
      return
    }
    throw error
  }
  const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body)
  const type = typeof answer.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=UTF-8'
  res.writeHead(answer.status ?? 200, { 'content-type': type, ...answer.headers }).end(text)
}

function sendError (res: ServerResponse, error: RpcError): void {
  const body = errorBody(error.code, error.message, error.details)
  res.writeHead(body.error.code, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(body))
}

async function readBody (req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length
    if (bytes > BODY_LIMIT_BYTES) throw invalidArgument(`Request body exceeds ${BODY_LIMIT_BYTES} bytes.`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

async function drain (req: IncomingMessage): Promise<void> {
  for await (const _ of req as AsyncIterable<Buffer>) { /* discard */ }
}

/** The request body as a JSON object; an empty body is `{}`, as Google's JSON APIs take it. */
export function jsonBody (call: HttpCall): Record<string, unknown> {
  const text = call.body.toString('utf8').trim()
  if (text === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw invalidArgument('Invalid JSON payload received. Unexpected token.')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalidArgument('Invalid JSON payload received. Expected an object.')
  }
  return parsed as Record<string, unknown>
}

/** The caller's OAuth bearer token; Google's APIs refuse a call without one, in these words. */
export function bearerToken (call: HttpCall): string {
  const m = /^Bearer\s+(\S+)$/i.exec(call.headers.authorization ?? '')
  if (!m) {
    throw unauthenticated('Request is missing required authentication credential. Expected OAuth 2 access token, ' +
      'login cookie or other valid authentication credential.')
  }
  return m[1]
}
