// openapi.yaml and the running app must agree: the same routes, the same error codes, and real
// responses that validate against the spec's schemas.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { Ajv } from 'ajv'
import { parse } from 'yaml'
import { MODULE_FILE, SPEC_FILE, renderSchemasModule } from '../../scripts/openapi-schemas.ts'
import { componentSchemaSources } from '../../src/openapi-schemas.ts'
import { ERRORS } from '../../src/errors.ts'
import type { InjectOptions } from 'fastify'
import { build, adminHeaders, webhookHeaders } from '../helper.ts'

const specText = readFileSync(SPEC_FILE, 'utf8')
const spec = parse(specText) as {
  openapi: string
  paths: Record<string, Record<string, { responses: Record<string, unknown>, operationId: string }>>
  components: { schemas: Record<string, unknown> }
}

const specRoutes = Object.entries(spec.paths).flatMap(([path, ops]) =>
  Object.keys(ops).map(method => `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`)).sort()

t.test('the document is OpenAPI 3.1 with unique operation ids', async t => {
  t.match(spec.openapi, /^3\.1\.\d+$/)
  const ids = Object.values(spec.paths).flatMap(ops => Object.values(ops).map(op => op.operationId))
  t.equal(new Set(ids).size, ids.length)
  t.ok(ids.every(id => typeof id === 'string' && id.length > 0))
})

t.test('src/openapi-schemas.ts is generated from openapi.yaml as it stands (else: npm run openapi-schemas)', async t => {
  t.strictSame(componentSchemaSources, spec.components.schemas)
  t.equal(readFileSync(MODULE_FILE, 'utf8'), renderSchemasModule(specText))
})

t.test('every route is in the spec and every spec path is a route', async t => {
  const app = await build(t)
  t.same([...new Set(app.routeTable)].sort(), specRoutes)
})

t.test('the Error schema lists exactly the codes of the error table', async t => {
  const error = spec.components.schemas.Error as { properties: { code: { enum: string[] } } }
  t.same([...error.properties.code.enum].sort(), Object.keys(ERRORS).sort())
})

t.test('real responses validate against the spec', async t => {
  const ajv = new Ajv({ strict: false, allErrors: true })
  for (const [name, schema] of Object.entries(spec.components.schemas)) {
    ajv.addSchema(schema as object, `#/components/schemas/${name}`)
  }
  const validate = (path: string, method: string, status: number, body: unknown): void => {
    const response = spec.paths[path][method].responses[String(status)] as { $ref?: string, content?: Record<string, { schema: { $ref: string } }> }
    t.ok(response, `${method.toUpperCase()} ${path} documents ${status}`)
    const ref = response.$ref !== undefined ? '#/components/schemas/Error' : response.content?.['application/json']?.schema.$ref
    if (ref === undefined) return
    const check = ajv.getSchema(ref)
    t.ok(check?.(body), `${method.toUpperCase()} ${path} ${status} conforms: ${JSON.stringify(check?.errors ?? [])}`)
  }
  const app = await build(t)
  const cases: Array<[string, string, InjectOptions]> = [
    ['/healthz', 'get', { method: 'GET', url: '/healthz' }],
    ['/readyz', 'get', { method: 'GET', url: '/readyz' }],
    ['/v1/dispatches', 'get', { method: 'GET', url: '/v1/dispatches', headers: adminHeaders() }],
    ['/v1/dispatches', 'get', { method: 'GET', url: '/v1/dispatches?limit=0', headers: adminHeaders() }],
    ['/v1/dispatches', 'get', { method: 'GET', url: '/v1/dispatches?cursor=bm9wZQ', headers: adminHeaders() }],
    ['/v1/dispatches', 'get', { method: 'GET', url: '/v1/dispatches' }],
    ['/v1/dispatches/{id}', 'get', { method: 'GET', url: '/v1/dispatches/8f14e45f-ceea-4167-a3a6-9f7e1b2c3d4e', headers: adminHeaders() }],
    ['/v1/dispatches/{id}', 'get', { method: 'GET', url: '/v1/dispatches/not-a-uuid', headers: adminHeaders() }],
    ['/v1/webhooks/prefect', 'post', { method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(), payload: '{}' }],
    ['/v1/pools', 'get', { method: 'GET', url: '/v1/pools', headers: adminHeaders() }],
    ['/v1/dispatches/{id}/cancel', 'post', { method: 'POST', url: '/v1/dispatches/8f14e45f-ceea-4167-a3a6-9f7e1b2c3d4e/cancel', headers: adminHeaders() }],
    ['/v1/dispatches/{id}/redrive', 'post', { method: 'POST', url: '/v1/dispatches/8f14e45f-ceea-4167-a3a6-9f7e1b2c3d4e/redrive', headers: adminHeaders() }],
    ['/v1/reconcile', 'post', { method: 'POST', url: '/v1/reconcile' }]
  ]
  for (const [path, method, request] of cases) {
    const res = await app.inject(request)
    validate(path, method, res.statusCode, res.json())
  }
  const yaml = await app.inject({ method: 'GET', url: '/openapi.yaml' })
  t.equal(yaml.statusCode, 200)
  t.match(yaml.headers['content-type'], /yaml/)
  t.equal(yaml.body, specText)
})

t.test('unknown routes answer with the error schema', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'ROUTE_NOT_FOUND')
})

t.test('query values the schema lets through but pushpool cannot use are 400 INVALID_QUERY, with what to fix', async t => {
  const app = await build(t)
  const get = async (query: string): Promise<{ status: number, body: { code?: string, message?: string } }> => {
    const res = await app.inject({ method: 'GET', url: `/v1/dispatches?${query}`, headers: adminHeaders() })
    return { status: res.statusCode, body: res.json() }
  }
  // RFC 3339 (and so format: date-time) allows a leap second; JavaScript's Date does not.
  for (const name of ['since', 'until']) {
    const leap = await get(`${name}=2026-12-31T23:59:60Z`)
    t.equal(leap.status, 400, `${name} on a leap second: 400`)
    t.equal(leap.body.code, 'INVALID_QUERY')
    t.match(leap.body.message, new RegExp(`${name}.*leap second`), 'the message names the parameter and why')
  }
  const state = await get('state=bogus')
  t.equal(state.body.code, 'INVALID_QUERY')
  t.match(state.body.message, 'state must be one of received, deferred, skipped, claimed, launching, launched, succeeded, failed, crashed, cancelled, retrying, submit_failed',
    'a bad state lists the states')
})

t.test('a cursor pushpool did not make is refused, however it is dressed', async t => {
  const app = await build(t)
  const cursor = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const forged = [
    cursor(['1', 'zzz']),
    cursor(['2026-01-01T00:00:00.000Z', 'zzz']),
    cursor(['1', '8f14e45f-ceea-4167-a3a6-9f7e1b2c3d4e']),
    cursor(['2026-01-01', '8f14e45f-ceea-4167-a3a6-9f7e1b2c3d4e']),
    cursor(['2026-01-01T00:00:00.000Z', '8f14e45f-ceea-4167-a3a6-9f7e1b2c3d4e', 'extra']),
    cursor({ createdAt: '2026-01-01T00:00:00.000Z', id: '8f14e45f-ceea-4167-a3a6-9f7e1b2c3d4e' }),
    'not base64url!'
  ]
  for (const value of forged) {
    const res = await app.inject({ method: 'GET', url: `/v1/dispatches?cursor=${encodeURIComponent(value)}`, headers: adminHeaders() })
    t.equal(res.statusCode, 400, `${Buffer.from(value, 'base64url').toString()} → 400`)
    t.equal(res.json().code, 'INVALID_CURSOR')
  }
  // The cursors pushpool hands out still page.
  for (const key of ['a', 'b', 'c']) {
    await app.store.createDispatch({ key: `${key}:1`, flowRunId: `${key}`, flowRunName: null, pool: 'p', deploymentId: null, state: 'received', dueAt: null, receivedAt: new Date().toISOString(), detail: 'test' })
  }
  const seen: string[] = []
  let next: string | null = null
  do {
    const res: { statusCode: number, json: () => { items: Array<{ key: string }>, next_cursor: string | null } } = await app.inject({ method: 'GET', url: `/v1/dispatches?limit=1${next === null ? '' : `&cursor=${next}`}`, headers: adminHeaders() })
    t.equal(res.statusCode, 200)
    seen.push(...res.json().items.map(d => d.key))
    next = res.json().next_cursor
  } while (next !== null && seen.length < 5)
  t.same(seen.sort(), ['a:1', 'b:1', 'c:1'], 'three pages of one, each once')
})
