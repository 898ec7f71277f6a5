// Operators' read routes over the dispatch ledger. Responses are serialised through the spec's
// schemas, so a field not in openapi.yaml (a secret, say) can never slip out.
import type { FastifyPluginAsync } from 'fastify'
import { HttpError } from '../errors.ts'
import { ref } from '../openapi.ts'
import type { Config } from '../config.ts'
import type { Dispatch, DispatchEvent, DispatchQuery } from '../store/store.ts'
import type { DispatchState } from '../store/transitions.ts'
import { dispatchView } from './views.ts'

interface ListQuery {
  state?: DispatchState
  pool?: string
  deployment_id?: string
  flow_run_id?: string
  since?: string
  until?: string
  limit: number
  cursor?: string
}

const admin: FastifyPluginAsync = async fastify => {
  fastify.addHook('onRequest', fastify.requireAdmin)

  fastify.get<{ Querystring: ListQuery }>('/v1/dispatches', {
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          state: ref('DispatchState'),
          pool: { type: 'string', maxLength: 200 },
          deployment_id: { type: 'string', format: 'uuid' },
          flow_run_id: { type: 'string', format: 'uuid' },
          since: { type: 'string', format: 'date-time' },
          until: { type: 'string', format: 'date-time' },
          limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
          cursor: { type: 'string', maxLength: 200 }
        }
      },
      response: { 200: ref('DispatchPage') }
    }
  }, async request => {
    const q = request.query
    const query: DispatchQuery = {
      state: q.state,
      pool: q.pool,
      deploymentId: q.deployment_id,
      flowRunId: q.flow_run_id,
      since: instant('since', q.since),
      until: instant('until', q.until),
      limit: q.limit,
      cursor: q.cursor === undefined ? undefined : decodeCursor(q.cursor)
    }
    const page = await fastify.store.listDispatches(query)
    return { items: page.items.map(dispatchView), next_cursor: page.next === null ? null : encodeCursor(page.next) }
  })

  fastify.get<{ Params: { id: string } }>('/v1/dispatches/:id', {
    schema: {
      params: { type: 'object', properties: { id: { type: 'string', format: 'uuid' } }, required: ['id'] },
      response: { 200: ref('DispatchDetail') }
    }
  }, async request => {
    const dispatch = await fastify.store.getDispatch(request.params.id)
    if (dispatch === null) throw new HttpError('DISPATCH_NOT_FOUND')
    const events = await fastify.store.listEvents(dispatch.id)
    return {
      dispatch: dispatchView(dispatch),
      events: events.map(eventView),
      job_spec: dispatch.jobSpec,
      links: links(dispatch, fastify.config)
    }
  })
}

function eventView (e: DispatchEvent): Record<string, unknown> {
  return { seq: e.seq, at: e.at, type: e.type, from: e.from, to: e.to, detail: e.detail, reply: e.reply }
}

function links (d: Dispatch, config: Config): Record<string, string | null> {
  const execution = d.executionName?.split('/').at(-1) ?? null
  return {
    cloud_run_console: execution !== null && d.region !== null && d.project !== null
      ? `https://console.cloud.google.com/run/jobs/executions/details/${d.region}/${execution}?project=${d.project}`
      : null,
    logs: d.logUri,
    prefect_ui: config.prefectUiUrl === null ? null : `${config.prefectUiUrl}/runs/flow-run/${d.flowRunId}`
  }
}

/**
 * A `date-time` as the store compares it. RFC 3339, and so the schema, allows a leap second
 * (23:59:60), which JavaScript's Date cannot hold.
 */
function instant (name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) {
    throw new HttpError('INVALID_QUERY', `Invalid querystring: ${name} is a leap second (seconds 60), which pushpool cannot compare: use 59`)
  }
  return new Date(ms).toISOString()
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

function encodeCursor (position: { createdAt: string, id: string }): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id])).toString('base64url')
}

/**
 * Only what encodeCursor makes: [an ISO timestamp as toISOString writes it, a dispatch uuid]. Any
 * other value would reach the store's comparison (PostgreSQL refuses a malformed timestamp or uuid).
 */
function decodeCursor (cursor: string): { createdAt: string, id: string } {
  try {
    const position = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown
    if (Array.isArray(position) && position.length === 2) {
      const [createdAt, id] = position as unknown[]
      if (typeof createdAt === 'string' && typeof id === 'string' && UUID.test(id) &&
        !Number.isNaN(Date.parse(createdAt)) && new Date(createdAt).toISOString() === createdAt) return { createdAt, id }
    }
  } catch {}
  throw new HttpError('INVALID_CURSOR')
}

export default admin
