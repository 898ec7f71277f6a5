// POST /v1/timers/fire: where a Cloud Tasks timer delivers (timers/cloud-tasks.ts), authenticated
// by the OIDC token Cloud Tasks mints for the invoker account (or an admin credential, to fire one
// by hand). A thin adapter: the dispatcher decides whether the dispatch still waits. A firing for a
// dispatch that moved on, or that another drive owns, is answered 200, so Cloud Tasks does not
// retry it; an outage of Prefect is 503, so it does.
import type { FastifyPluginAsync } from 'fastify'
import { ref } from '../openapi.ts'
import { TIMER_ROUTE } from '../timers/timers.ts'

/** A firing carries one small JSON object. */
const BODY_LIMIT = 1024

const timers: FastifyPluginAsync = async fastify => {
  fastify.post<{ Body: { dispatch_id: string } }>(TIMER_ROUTE, {
    bodyLimit: BODY_LIMIT,
    onRequest: fastify.requireTimerCaller,
    schema: {
      body: ref('TimerFiring'),
      response: { 200: ref('TimerFired') }
    }
  }, async request => {
    const outcome = await fastify.dispatcher.fire(request.body.dispatch_id)
    if (outcome.kind === 'gone') return { status: 'gone', dispatch_id: request.body.dispatch_id, state: null }
    return { status: outcome.kind, dispatch_id: outcome.dispatch.id, state: outcome.dispatch.state }
  })
}

export default timers
