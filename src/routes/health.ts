// Liveness, readiness and the contract. Readiness checks only what this process owns (its store):
// a probe that called Prefect or Cloud Run would take pushpool down whenever a peer blinked.
import type { FastifyPluginAsync } from 'fastify'
import { HttpError } from '../errors.ts'
import { openApiText, ref } from '../openapi.ts'

const health: FastifyPluginAsync = async fastify => {
  // Read now, so that an image without openapi.yaml fails at start rather than on the first request.
  const spec = openApiText()
  fastify.get('/healthz', { schema: { response: { 200: ref('Health') } } }, async () => ({ status: 'ok' }))

  fastify.get('/readyz', { schema: { response: { 200: ref('Health') } } }, async request => {
    try {
      await fastify.store.ping()
    } catch (err) {
      request.log.error({ err }, 'store is not reachable')
      throw new HttpError('NOT_READY', 'pushpool is not ready: its store is not reachable')
    }
    return { status: 'ok' }
  })

  fastify.get('/openapi.yaml', async (_request, reply) => {
    return await reply.type('application/yaml').send(spec)
  })
}

export default health
