// One error handler for the whole app: every error leaves as `{code, message}` with a code from
// the table in errors.ts. Fastify's own client errors are mapped to our codes; anything unexpected
// is a 500 whose message reveals nothing (the log has the detail).
import fp from 'fastify-plugin'
import type { FastifyError } from 'fastify'
import { HttpError, type ErrorCode } from '../errors.ts'
import { PrefectUnavailable } from '../prefect/client.ts'
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
  const fastifyCode = (err as FastifyError).code
  const mapped = fastifyCode === undefined ? undefined : WEBHOOK_BODY_CODES[fastifyCode]
  if (mapped !== undefined) return isWebhook ? new HttpError(mapped) : new HttpError('BAD_REQUEST', `The request body is refused: ${err.message}`)
  const { validation, validationContext } = err as FastifyError
  if (validation !== undefined) {
    const code = validationContext === 'querystring' ? 'INVALID_QUERY' : 'BAD_REQUEST'
    return new HttpError(code, `Invalid ${validationContext ?? 'request'}: ${err.message}`)
  }
  const status = (err as FastifyError).statusCode
  if (status !== undefined && status >= 400 && status < 500) return new HttpError('BAD_REQUEST', err.message)
  return new HttpError('INTERNAL')
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
