// GET /metrics in Prometheus text format, behind admin auth: pool names and volumes are
// operational data, and Prometheus can send a bearer token.
import type { FastifyPluginAsync } from 'fastify'

const metrics: FastifyPluginAsync = async fastify => {
  fastify.get('/metrics', { onRequest: fastify.requireAdmin }, async (_request, reply) => {
    return await reply.type('text/plain; version=0.0.4').send(fastify.metrics.render())
  })
}

export default metrics
