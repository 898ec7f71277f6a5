// Operators' write routes: cancel and redrive a dispatch, reconcile now, and the pools summary.
// Each is a thin adapter: the decisions live in the dispatcher, canceller and reconciler.
import type { FastifyPluginAsync } from 'fastify'
import { HttpError } from '../errors.ts'
import { ref } from '../openapi.ts'
import { dispatchView } from './views.ts'

/** These routes take no body; anything larger than this is refused unread. */
const BODY_LIMIT = 1024
const idParams = { type: 'object', properties: { id: { type: 'string', format: 'uuid' } }, required: ['id'] }

const operations: FastifyPluginAsync = async fastify => {
  fastify.post<{ Params: { id: string } }>('/v1/dispatches/:id/cancel', {
    bodyLimit: BODY_LIMIT,
    onRequest: fastify.requireAdmin,
    schema: { params: idParams, response: { 200: ref('DispatchEnvelope') } }
  }, async request => {
    const outcome = await fastify.canceller.cancelByOperator(request.params.id)
    if (outcome.kind === 'not-found') throw new HttpError('DISPATCH_NOT_FOUND')
    if (outcome.kind === 'not-cancellable') throw new HttpError('DISPATCH_NOT_CANCELLABLE')
    return { dispatch: dispatchView(outcome.dispatch) }
  })

  fastify.post<{ Params: { id: string } }>('/v1/dispatches/:id/redrive', {
    bodyLimit: BODY_LIMIT,
    onRequest: fastify.requireAdmin,
    schema: { params: idParams, response: { 200: ref('DispatchEnvelope') } }
  }, async request => {
    const dispatch = await fastify.store.getDispatch(request.params.id)
    if (dispatch === null) throw new HttpError('DISPATCH_NOT_FOUND')
    const outcome = await fastify.dispatcher.redrive(dispatch)
    if (outcome.kind === 'not-drivable') throw new HttpError('DISPATCH_NOT_REDRIVABLE')
    if (outcome.kind === 'busy') {
      const lease = outcome.dispatch.lease
      throw new HttpError('DISPATCH_BUSY', lease === null
        ? undefined
        : `Another drive owns this dispatch until ${lease.expiresAt} (${lease.owner}): look again once it has moved on`)
    }
    return { dispatch: dispatchView(outcome.dispatch) }
  })

  fastify.post('/v1/reconcile', {
    bodyLimit: BODY_LIMIT,
    onRequest: fastify.requireReconcileCaller,
    schema: { response: { 200: ref('ReconcileReport') } }
  }, async () => {
    const report = await fastify.reconciler.run()
    fastify.metrics.reconcileDuration.observe(report.duration_ms / 1000)
    return report
  })

  fastify.get('/v1/pools', {
    bodyLimit: BODY_LIMIT,
    onRequest: fastify.requireAdmin,
    schema: { response: { 200: ref('PoolList') } }
  }, async () => {
    const pools = await Promise.all(fastify.config.pools.map(async name => {
      const summary = await fastify.store.summarizePool(name)
      const sorted = [...summary.recentLatenciesMs].sort((a, b) => a - b)
      return {
        name,
        counts: summary.counts,
        last_dispatch_at: summary.lastDispatchAt,
        launch_latency_ms: sorted.length === 0
          ? null
          : { median: sorted[Math.floor((sorted.length - 1) / 2)], p90: sorted[Math.floor((sorted.length - 1) * 0.9)], samples: sorted.length }
      }
    }))
    return { pools }
  })
}

export default operations
