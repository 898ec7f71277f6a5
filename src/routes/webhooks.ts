// POST /v1/webhooks/prefect: a thin HTTP adapter over the dispatcher. The pipeline runs in order:
// content type (415), bearer secret (401), size (413), parse (400), handle — so an unauthenticated
// caller learns nothing from the body checks and never costs a body parse.
import type { FastifyPluginAsync } from 'fastify'
import { HttpError } from '../errors.ts'
import { makeBearerCheck } from '../auth/bearer.ts'
import { parseWebhookPayload } from '../webhook/payload.ts'
import { ref } from '../openapi.ts'

const BODY_LIMIT = 64 * 1024
const WEBHOOK_ROUTE = '/v1/webhooks/prefect'

const webhooks: FastifyPluginAsync = async fastify => {
  const isWebhookSecret = makeBearerCheck(fastify.config.webhookSecrets)

  // Scoped to this plugin: the raw bytes are kept and parsed by our own code, with our own errors.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_req, body, done) => {
    done(null, body)
  })

  fastify.post(WEBHOOK_ROUTE, {
    bodyLimit: BODY_LIMIT,
    // Body errors answer in the webhook's own codes (plugins/errors.ts).
    config: { bodyErrors: 'webhook' },
    schema: {
      response: { 200: ref('WebhookNoop'), 202: ref('WebhookAccepted') }
    },
    onRequest: async request => {
      const type = request.headers['content-type']?.split(';')[0].trim().toLowerCase()
      if (type !== 'application/json') throw new HttpError('WEBHOOK_UNSUPPORTED_MEDIA_TYPE')
      if (!isWebhookSecret(request.headers.authorization)) throw new HttpError('WEBHOOK_UNAUTHORIZED')
      const length = Number(request.headers['content-length'])
      if (Number.isFinite(length) && length > BODY_LIMIT) throw new HttpError('WEBHOOK_BODY_TOO_LARGE')
    }
  }, async (request, reply) => {
    const receivedAt = new Date()
    if (!Buffer.isBuffer(request.body)) throw new HttpError('WEBHOOK_INVALID_JSON')
    const parsed = parseWebhookPayload(request.body)
    if (!parsed.ok) throw new HttpError(parsed.code, parsed.message)
    const { payload } = parsed
    const log = request.log.child({ flow_run_id: payload.flowRunId })
    const outcome = await fastify.dispatcher.handle({ flowRunId: payload.flowRunId, event: payload.event, receivedAt })
    if (outcome.status === 'accepted') {
      log.info({ dispatch_id: outcome.dispatch.id, state: outcome.dispatch.state }, 'dispatch accepted')
      return await reply.code(202).send({ status: 'accepted', dispatch_id: outcome.dispatch.id, state: outcome.dispatch.state })
    }
    if (outcome.status === 'duplicate') {
      log.info({ dispatch_id: outcome.dispatch.id }, outcome.reason)
      return { status: 'duplicate', reason: outcome.reason, dispatch_id: outcome.dispatch.id, state: outcome.dispatch.state }
    }
    log.info({ dispatch_id: outcome.dispatch?.id }, outcome.reason)
    return { status: 'ignored', reason: outcome.reason, dispatch_id: outcome.dispatch?.id, state: outcome.dispatch?.state }
  })
}

export default webhooks
