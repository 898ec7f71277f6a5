// POST /v1/executions/ended: Cloud Run's System Event audit entry for a job execution, pushed by a
// Pub/Sub subscription of a log sink (docs/execution-end-push.md), with the subscription's OIDC
// token. A thin adapter: the entry is a hint, the reconciler checks that one dispatch at once
// (reading the execution itself), so the run is Crashed, or its record closed, within seconds of
// the container's end instead of at the next pass. Anything handled or irrelevant is answered 200,
// so Pub/Sub does not redeliver it; an outage of Prefect or Cloud Run is 503, so it does.
import type { FastifyPluginAsync } from 'fastify'
import { HttpError } from '../errors.ts'
import { ref } from '../openapi.ts'
import { parseExecutionEndPush } from '../webhook/execution-end.ts'

/** A pushed log entry: the v1 execution it carries is a few KiB. */
const BODY_LIMIT = 256 * 1024

const executionEvents: FastifyPluginAsync = async fastify => {
  fastify.post('/v1/executions/ended', {
    bodyLimit: BODY_LIMIT,
    onRequest: fastify.requireExecutionEventsCaller,
    schema: { response: { 200: ref('ExecutionEndHandled') } }
  }, async request => {
    const parsed = parseExecutionEndPush(request.body)
    if (!parsed.ok) throw new HttpError(parsed.code, parsed.message)
    if ('ignored' in parsed) return { status: 'ignored', reason: parsed.ignored, dispatch_id: null, state: null }
    const dispatch = await fastify.reconciler.checkNow(parsed.execution.tail)
    if (dispatch === null) {
      return { status: 'ignored', reason: 'no launched dispatch of this instance\'s ledger is free to check for that execution', dispatch_id: null, state: null }
    }
    request.log.info({ dispatch_id: dispatch.id, state: dispatch.state, cloud_run: parsed.execution.status }, 'execution end pushed')
    return { status: dispatch.state === 'launched' ? 'running' : 'closed', reason: parsed.execution.status ?? '', dispatch_id: dispatch.id, state: dispatch.state }
  })
}

export default executionEvents
