// One error handler for the whole app: every error leaves as `{code, message}` with a code from
// the table in errors.ts. Fastify's own client errors are mapped to our codes; anything unexpected
// is a 500 whose message reveals nothing (the log has the detail). The same holds for what Node
// refuses before any route runs (clientErrorHandler).
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance } from 'fastify'
// maxHeaderSize is an accessor of node:http, read through its default export (scripts/build.ts).
import http, { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { HttpError, type ErrorCode } from '../errors.ts'
import { PrefectRequestError, PrefectUnavailable } from '../prefect/client.ts'
import { StoreUnavailable } from '../store/store.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `webhook`: Fastify's body errors on this route answer in the webhook's codes, not BAD_REQUEST. */
    bodyErrors?: 'webhook'
  }
}

// Fastify's body errors, as the webhook answers them; any other route answers BAD_REQUEST.
const WEBHOOK_BODY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'WEBHOOK_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'WEBHOOK_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'WEBHOOK_INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'WEBHOOK_INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST'
}

export function toHttpError (err: FastifyError | Error, isWebhook: boolean): HttpError {
  if (err instanceof HttpError) return err
  if (err instanceof PrefectUnavailable) return new HttpError('PREFECT_UNAVAILABLE', undefined, { 'retry-after': '30' })
  if (err instanceof StoreUnavailable) return new HttpError('STORE_UNAVAILABLE', undefined, { 'retry-after': '5' })
  // Not the caller's fault, nor fixed by retrying soon: pushpool's own configuration is wrong.
  if (err instanceof PrefectRequestError && (err.status === 401 || err.status === 403)) return new HttpError('PREFECT_UNAUTHORIZED')
  const fastifyCode = (err as FastifyError).code
  const mapped = fastifyCode === undefined ? undefined : WEBHOOK_BODY_CODES[fastifyCode]
  if (mapped !== undefined) return isWebhook ? new HttpError(mapped) : new HttpError('BAD_REQUEST', `The request body is refused: ${err.message}`)
  const { validation, validationContext } = err as FastifyError
  if (validation !== undefined) {
    const code = validationContext === 'querystring' ? 'INVALID_QUERY' : 'BAD_REQUEST'
    return new HttpError(code, `Invalid ${validationContext ?? 'request'}: ${validationMessage(err as FastifyError)}`)
  }
  const status = (err as FastifyError).statusCode
  if (status !== undefined && status >= 400 && status < 500) return new HttpError('BAD_REQUEST', err.message)
  return new HttpError('INTERNAL')
}

/**
 * What Node's HTTP parser refuses before Fastify sees a request (a timeout, oversized headers, bytes
 * that are not HTTP), answered in the error schema rather than Fastify's `{error, message,
 * statusCode}`, on a connection that is then closed. Bound to the Fastify instance.
 */
export function clientErrorHandler (this: FastifyInstance, err: NodeJS.ErrnoException & { reason?: string }, socket: Socket): void {
  // A reset connection has no one to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const httpError = clientError(err, this.server.headersTimeout, this.server.requestTimeout)
  this.log.debug({ code: httpError.code, parser: err.code }, 'connection refused before routing')
  if (socket.writable) {
    const body = JSON.stringify({ code: httpError.code, message: httpError.message })
    socket.write(`HTTP/1.1 ${httpError.statusCode} ${STATUS_CODES[httpError.statusCode] ?? ''}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy(err)
}

function clientError (err: NodeJS.ErrnoException & { reason?: string }, headersTimeoutMs: number, requestTimeoutMs: number): HttpError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new HttpError('REQUEST_TIMEOUT', 'The request did not arrive in time: send its headers within ' +
        `${headersTimeoutMs / 1000} s of connecting, and the whole request within ${requestTimeoutMs / 1000} s`)
    case 'HPE_HEADER_OVERFLOW':
      return new HttpError('HEADERS_TOO_LARGE', `The request headers are larger than ${http.maxHeaderSize / 1024} KiB in all: send fewer or smaller headers`)
    default:
      // llhttp's reason is a fixed phrase ("Invalid character in Content-Length"), never the client's bytes.
      return new HttpError('BAD_REQUEST', `The request is not valid HTTP/1.1: ${err.reason ?? err.code ?? 'unreadable'}`)
  }
}

/** Ajv's wording, except that a value outside a list names the list, so the caller can pick from it. */
function validationMessage (err: FastifyError): string {
  const [first] = err.validation ?? []
  const allowed = first?.keyword === 'enum' ? (first.params as { allowedValues?: unknown[] }).allowedValues : undefined
  if (allowed === undefined) return err.message
  return `${first.instancePath.replace(/^\//, '').replaceAll('/', '.') || 'the value'} must be one of ${allowed.join(', ')}`
}

export default fp(async fastify => {
  fastify.setErrorHandler(async (err: FastifyError, request, reply) => {
    const httpError = toHttpError(err, request.routeOptions.config.bodyErrors === 'webhook')
    if (httpError.statusCode >= 500) request.log.error({ err }, 'request failed')
    else request.log.info({ code: httpError.code }, 'request rejected')
    return await reply.code(httpError.statusCode).headers(httpError.headers)
      .send({ code: httpError.code, message: httpError.message })
  })
  fastify.setNotFoundHandler(async (request, reply) => {
    return await reply.code(404).send({ code: 'ROUTE_NOT_FOUND', message: new HttpError('ROUTE_NOT_FOUND').message })
  })
}, { name: 'errors' })
