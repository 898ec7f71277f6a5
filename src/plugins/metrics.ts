// The metrics registry as a decorator; GET /metrics is in routes/metrics.ts.
import fp from 'fastify-plugin'
import { PushpoolMetrics } from '../metrics/registry.ts'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: PushpoolMetrics
  }
}

export default fp(async fastify => {
  fastify.decorate('metrics', new PushpoolMetrics())
}, { name: 'metrics' })
