// Hostile input: prototype pollution, deep nesting, huge headers, slow bodies, bytes
// that are not UTF-8, resource ids that try path traversal or point at other flow runs, and pool
// templates whose `{{ $NAME }}` placeholders try to read pushpool's own environment. Real Prefect,
// the emulator, and real sockets wherever inject() would smooth the input over.
import t, { type Test } from 'tap'
import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures, serviceAccountKey } from '../harness/prefect-fixtures.ts'
import { scene, executionsOf, settledDispatch, type Scene } from '../harness/scene.ts'
import { build, webhookHeaders, webhookPayload, adminHeaders, deliverUntilPrefectAnswers, WEBHOOK_SECRET, ADMIN_TOKEN } from '../helper.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { rawRequest, recordingProxy } from './raw-http.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const ERROR_CODES = new Set([
  'WEBHOOK_UNAUTHORIZED', 'WEBHOOK_UNSUPPORTED_MEDIA_TYPE', 'WEBHOOK_BODY_TOO_LARGE', 'WEBHOOK_INVALID_JSON',
  'WEBHOOK_INVALID_PAYLOAD', 'WEBHOOK_FOREIGN_RESOURCE', 'ADMIN_UNAUTHORIZED', 'ADMIN_FORBIDDEN', 'DISPATCH_NOT_FOUND',
  'DISPATCH_NOT_CANCELLABLE', 'DISPATCH_NOT_REDRIVABLE', 'INVALID_QUERY', 'INVALID_CURSOR', 'ROUTE_NOT_FOUND',
  'METHOD_NOT_ALLOWED', 'BAD_REQUEST', 'REQUEST_TIMEOUT', 'HEADERS_TOO_LARGE', 'PREFECT_UNAVAILABLE', 'PREFECT_UNAUTHORIZED',
  'OVERLOADED', 'NOT_READY', 'INTERNAL'
])

/** An error reply as openapi.yaml's Error schema has it: exactly {code, message}, code from the table. */
function isContractError (body: string): boolean {
  try {
    const json = JSON.parse(body) as Record<string, unknown>
    return Object.keys(json).sort().join() === 'code,message' && ERROR_CODES.has(json.code as string) && typeof json.message === 'string'
  } catch {
    return false
  }
}

async function listening (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as { port: number }).port
}

async function healthy (t: Test, app: FastifyInstance): Promise<void> {
  const res = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(res.statusCode, 200, 'the server still answers /healthz')
}

const post = (app: FastifyInstance, payload: string | Buffer, headers = webhookHeaders()) =>
  app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers, payload })

/**
 * A webhook that must reach Prefect, delivered again while pushpool finds Prefect too slow to read
 * the run (503 PREFECT_UNAVAILABLE, nothing recorded): where the subject is not that first answer.
 */
const deliver = (app: FastifyInstance, payload: string | Buffer) => deliverUntilPrefectAnswers(() => post(app, payload),
  async res => ({ status: res.statusCode, code: res.statusCode === 503 ? res.json().code : undefined }))

let shared: Scene | undefined
const stage = async (): Promise<Scene> => { shared ??= await scene(t, prefect, peers, emulator); return shared }

t.test('prototype pollution: __proto__ and constructor keys are inert, and never supply a field', async t => {
  const s = await stage()
  const run = await s.flowRun()
  const hostile = `{"__proto__":{"polluted":"yes","resource_id":"prefect.flow-run.${randomUUID()}"},` +
    `"constructor":{"prototype":{"polluted":"yes"}},"resource_id":"prefect.flow-run.${run}"}`
  const res = await deliver(s.app, hostile)
  t.equal(res.statusCode, 202, 'the run named by the own resource_id is dispatched')
  t.equal((await settledDispatch(s.app, res.json().dispatch_id))?.state, 'launched')
  t.equal(executionsOf(emulator, run).length, 1)

  const inherited = await post(s.app, `{"__proto__":{"resource_id":"prefect.flow-run.${await s.flowRun()}"}}`)
  t.equal(inherited.statusCode, 400)
  t.equal(inherited.json().code, 'WEBHOOK_INVALID_PAYLOAD', 'a resource_id only under __proto__ is not read')

  const query = await s.app.inject({ method: 'GET', url: '/v1/dispatches?__proto__[polluted]=yes&constructor[prototype][polluted]=yes', headers: adminHeaders() })
  t.equal(query.statusCode, 400)
  t.equal(query.json().code, 'INVALID_QUERY', 'unknown query keys are refused')

  const body = await s.app.inject({ method: 'POST', url: '/v1/reconcile', headers: { ...adminHeaders(), 'content-type': 'application/json' }, payload: '{"__proto__":{"polluted":"yes"}}' })
  t.equal(body.statusCode, 400, 'an admin route refuses a JSON body with __proto__ (secure-json-parse)')
  t.ok(isContractError(body.body), `with a contract error: ${body.body}`)

  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype was not polluted')
  t.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false)
  t.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'resource_id'), false)
})

t.test('deeply nested JSON is refused without exhausting the stack', async t => {
  const s = await stage()
  const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)
  const run = await s.flowRun()
  const nested = await post(s.app, `{"resource_id":"prefect.flow-run.${run}","x":${deep(30_000)}}`)
  t.equal(nested.statusCode, 400)
  t.equal(nested.json().code, 'WEBHOOK_INVALID_PAYLOAD', 'nested deeper than the payload template ever is')
  t.equal(executionsOf(emulator, run).length, 0, 'and nothing launched')

  const unbalanced = await post(s.app, '['.repeat(60_000))
  t.equal(unbalanced.json().code, 'WEBHOOK_INVALID_JSON')

  const oversized = await post(s.app, `{"resource_id":"prefect.flow-run.${run}","x":${deep(300_000)}}`)
  t.equal(oversized.statusCode, 413)
  t.equal(oversized.json().code, 'WEBHOOK_BODY_TOO_LARGE')

  // Admin routes take no body, but Fastify parses JSON before any preHandler runs.
  const admin = await s.app.inject({ method: 'POST', url: '/v1/reconcile', headers: { ...adminHeaders(), 'content-type': 'application/json' }, payload: `{"x":${deep(400_000)}}` })
  t.ok(admin.statusCode < 500, `an admin route given 800 KB of nesting answers ${admin.statusCode}, not a 5xx`)
  await healthy(t, s.app)
})

t.test('huge headers are refused with 431 on a real socket', async t => {
  const app = await build(t)
  const port = await listening(app)
  const big = await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`)
  t.equal(big.status, 431, 'a 20 KB header is over Node\'s 16 KiB limit')
  t.ok(isContractError(big.body), `with a contract error: ${big.body}`)
  t.equal(JSON.parse(big.body).code, 'HEADERS_TOO_LARGE')
  const auth = await rawRequest(port, `POST /v1/webhooks/prefect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'s'.repeat(17_000)}\r\n` +
    'Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}')
  t.equal(auth.status, 431, 'so is a 17 KB Authorization header, before any secret comparison')
  t.ok(isContractError(auth.body))
  const many = await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\nConnection: close\r\n\r\n`)
  t.equal(many.status, 431, '3000 small headers add up to too much as well')
  t.ok(isContractError(many.body))
  await healthy(t, app)
})

t.test('a request that is not valid HTTP is refused with the error schema, before any route', async t => {
  const app = await build(t)
  const port = await listening(app)
  const cases: Array<[string, string]> = [
    ['a Content-Length that is not a number', 'POST /v1/webhooks/prefect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12abc\r\n\r\n{}'],
    ['two Content-Length headers that differ', 'POST /v1/reconcile HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'],
    ['Content-Length beside chunked Transfer-Encoding', 'POST /v1/reconcile HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}'],
    ['a request line that is not HTTP', 'HELLO\r\n\r\n']
  ]
  for (const [what, head] of cases) {
    const res = await rawRequest(port, head, { deadlineMs: 10_000 })
    t.equal(res.status, 400, `${what}: 400`)
    t.ok(isContractError(res.body), `${what}: a contract error: ${res.body}`)
    t.equal(JSON.parse(res.body || '{}').code, 'BAD_REQUEST')
  }
  await healthy(t, app)
})

t.test('connections that never send a byte are closed within headersTimeout, and a slow first byte is still served', async t => {
  const app = await build(t)
  const port = await listening(app)
  const headersTimeoutMs = app.server.headersTimeout
  const silent = await Promise.all(Array.from({ length: 50 }, () => rawRequest(port, '', { deadlineMs: 30_000 })))
  const closed = silent.filter(r => r.closedByServer)
  t.equal(closed.length, silent.length, `the server closed all ${silent.length} silent connections`)
  const slowest = Math.max(...silent.map(r => r.closedAfterMs))
  t.ok(slowest <= headersTimeoutMs + 3000, `the last after ${slowest} ms (headersTimeout ${headersTimeoutMs} ms + 3 s)`)
  t.same([...new Set(silent.map(r => r.status))], [408], 'each with 408')
  t.ok(silent.every(r => isContractError(r.body) && JSON.parse(r.body).code === 'REQUEST_TIMEOUT'), `and a contract error: ${silent[0]?.body}`)

  // A client that waits a while before it speaks, but less than the limit, is served as usual.
  const late = await rawRequest(port, '', { delayMs: Math.floor(headersTimeoutMs / 2), then: 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', deadlineMs: 30_000 })
  t.equal(late.status, 200, `a request sent ${Math.floor(headersTimeoutMs / 2)} ms after connecting is answered`)
})

t.test('slow clients are cut off: a trickled body and trickled headers', async t => {
  const app = await build(t)
  const port = await listening(app)
  const requestTimeoutMs = app.server.requestTimeout
  const headersTimeoutMs = app.server.headersTimeout
  t.ok(requestTimeoutMs > 0 && requestTimeoutMs <= 20_000, `requestTimeout is set (${requestTimeoutMs} ms)`)
  t.ok(headersTimeoutMs > 0 && headersTimeoutMs <= 10_000, `headersTimeout is set (${headersTimeoutMs} ms)`)
  const checkMs = (app.server as unknown as { connectionsCheckingInterval?: number }).connectionsCheckingInterval ?? 30_000

  const [body, headers] = await Promise.all([
    // Headers at once, then one byte of a 1000-byte body every 500 ms: a slowloris body.
    rawRequest(port, `POST /v1/webhooks/prefect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${WEBHOOK_SECRET}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{', { trickle: { chunk: ' ', everyMs: 500 }, deadlineMs: 45_000 }),
    // A header line every 500 ms, never the blank line that ends them.
    rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', { trickle: { chunk: 'X-Slow: 1\r\n', everyMs: 500 }, deadlineMs: 45_000 })
  ])
  t.ok(body.closedByServer, `the server closed the slow body (after ${body.closedAfterMs} ms)`)
  t.equal(body.status, 408, 'with 408 Request Timeout')
  t.ok(isContractError(body.body) && JSON.parse(body.body).code === 'REQUEST_TIMEOUT', `in the error schema: ${body.body}`)
  t.ok(headers.closedByServer, `the server closed the slow headers (after ${headers.closedAfterMs} ms)`)
  t.equal(headers.status, 408)
  t.ok(isContractError(headers.body) && JSON.parse(headers.body).code === 'REQUEST_TIMEOUT', `in the error schema: ${headers.body}`)
  // Node enforces both timeouts when it sweeps its connections, every connectionsCheckingInterval.
  const slack = 3000
  t.ok(checkMs <= 1000, `connections are swept every ${checkMs} ms`)
  t.ok(body.closedAfterMs <= requestTimeoutMs + slack,
    `slow body cut at ${body.closedAfterMs} ms, by requestTimeout ${requestTimeoutMs} ms + ${slack}`)
  t.ok(headers.closedAfterMs <= headersTimeoutMs + slack,
    `slow headers cut at ${headers.closedAfterMs} ms, by headersTimeout ${headersTimeoutMs} ms + ${slack}`)
  await healthy(t, app)
})

t.test('bytes that are not UTF-8', async t => {
  const s = await stage()
  const port = await listening(s.app)
  const bytes = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map(p => typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)))

  const garbage = await post(s.app, bytes([0xff, 0xfe, 0xfd, 0xc0, 0x80]))
  t.equal(garbage.statusCode, 400)
  t.equal(garbage.json().code, 'WEBHOOK_INVALID_JSON', 'a body of invalid bytes is not JSON')

  const inResource = await post(s.app, bytes('{"resource_id":"prefect.flow-run.', [0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80], '"}'))
  t.equal(inResource.statusCode, 400)
  t.equal(inResource.json().code, 'WEBHOOK_FOREIGN_RESOURCE', 'invalid bytes never make a flow run id')
  t.doesNotThrow(() => JSON.parse(inResource.body), 'the reply, which quotes the resource, is still valid JSON')

  // Decoding is lenient (U+FFFD) elsewhere: only resource_id is used, and it must be ASCII.
  const run = await s.flowRun()
  const inEvent = await deliver(s.app, bytes(`{"resource_id":"prefect.flow-run.${run}","event":"`, [0xff, 0xfe], '"}'))
  t.equal(inEvent.statusCode, 202, 'invalid bytes in a field pushpool ignores do not stop the dispatch')
  t.equal((await settledDispatch(s.app, inEvent.json().dispatch_id))?.state, 'launched')
  t.equal(executionsOf(emulator, run).length, 1)

  const utf16 = await post(s.app, Buffer.from(`\ufeff{"resource_id":"prefect.flow-run.${run}"}`, 'utf16le'),
    { ...webhookHeaders(), 'content-type': 'application/json; charset=utf-16' })
  t.equal(utf16.json().code, 'WEBHOOK_INVALID_JSON', 'UTF-16 is not decoded as if it were UTF-8 JSON')

  const header = await rawRequest(port, bytes('POST /v1/webhooks/prefect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ',
    [0xff, 0xfe, 0xc3], '\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}'))
  t.equal(header.status, 401, 'an Authorization header of invalid bytes is just a wrong secret')
  t.ok(isContractError(header.body))

  const adminHeader = await rawRequest(port, bytes('GET /v1/pools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ', [0xff, 0xfe], '\r\nConnection: close\r\n\r\n'))
  t.equal(adminHeader.status, 401)
  t.ok(isContractError(adminHeader.body))

  const url = await rawRequest(port, `GET /v1/dispatches/%ff%fe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`)
  t.equal(url.status, 400, 'a path that percent-decodes to invalid UTF-8 is a 400')
  t.ok(isContractError(url.body), `and answers with the Error schema: ${url.body}`)
  await healthy(t, s.app)
})

t.test('resource ids that try path traversal never leave the flow-run read', async t => {
  const s = await stage()
  // pushpool's own Prefect client goes through a recording proxy here, to see what it asks for.
  const proxy = await recordingProxy(peers.apiUrl)
  t.teardown(() => proxy.close())
  const app = await build(t, { env: { PREFECT_API_URL: proxy.url, PREFECT_API_AUTH_STRING: peers.authString, PUSHPOOL_POOLS: s.pool, PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint } })
  const id = randomUUID()
  const hostile = [
    'prefect.flow-run.../../admin/version',
    `prefect.flow-run.${id}/../../work_pools/${s.pool}`,
    `prefect.flow-run.${id}/../${randomUUID()}`,
    `prefect.flow-run.%2e%2e%2f${id}`,
    `prefect.flow-run.${id}?include_secrets=true`,
    `prefect.flow-run.${id}#x`,
    `prefect.flow-run.${id}\n`,
    `prefect.flow-run.${id} `,
    `prefect.flow-run.${id}.${randomUUID()}`,
    `prefect.deployment.${s.deploymentId}`,
    `prefect.block-document.${id}`,
    'prefect.flow-run.' + 'a'.repeat(36)
  ]
  for (const resource of hostile) {
    const res = await post(app, JSON.stringify({ resource_id: resource }))
    t.equal(res.statusCode, 400, `${JSON.stringify(resource)} → 400`)
    t.equal(res.json().code, 'WEBHOOK_FOREIGN_RESOURCE')
  }
  t.same(proxy.requests, [], 'none of them made pushpool call Prefect at all')

  const upper = await deliver(app, JSON.stringify({ resource_id: `prefect.flow-run.${id.toUpperCase()}` }))
  t.equal(upper.statusCode, 200)
  // The same read may be sent more than once: Prefect's client retries a 503 (a locked database),
  // and a delivery Prefect was too slow for is made again. What is read must still be that one run.
  t.same([...new Set(proxy.requests)], [`GET /flow_runs/${id}`], 'a well-formed id is read as exactly one flow run, lower-cased')

  const port = await listening(app)
  for (const path of ['/v1/dispatches/../../openapi.yaml', '/v1/dispatches/..%2f..%2fopenapi.yaml', '/v1/dispatches/%2e%2e', `/v1/dispatches/${id}/../../pools`, '/v1/../healthz']) {
    const res = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`)
    t.ok(res.status === 400 || res.status === 404, `GET ${path} → ${res.status}`)
    t.ok(isContractError(res.body), 'with a contract error')
  }
})

t.test('resource ids that point at other flow runs launch nothing', async t => {
  const s = await stage()
  // A run of a pool this pushpool does not serve: the webhook secret does not make it ours.
  const foreignPool = `foreign-${randomUUID().slice(0, 8)}`
  await prefect.createWorkPool(foreignPool, 'cloud-run-v2', await prefect.defaultBaseJobTemplate('cloud-run-v2'))
  const foreignDeployment = await prefect.createDeployment({ name: `dep-${foreignPool}`, flowId: await prefect.createFlow(`flow-${foreignPool}`), workPoolName: foreignPool })
  const foreign = (await prefect.createFlowRun(foreignDeployment)).id
  const res = await s.webhook(foreign)
  t.equal(res.statusCode, 200)
  t.equal(res.json().status, 'ignored')
  t.match(res.json().reason, /not served/)
  t.equal(res.json().dispatch_id, undefined, 'no dispatch recorded')
  t.equal(executionsOf(emulator, foreign).length, 0, 'no execution')
  t.equal((await prefect.readFlowRun(foreign)).state?.type, 'SCHEDULED', 'and Prefect\'s run is untouched')

  const missing = await s.webhook(randomUUID())
  t.equal(missing.json().status, 'ignored')
  t.match(missing.json().reason, /does not exist/)

  // The ids of other Prefect objects are not flow runs either.
  const deployment = await s.webhook(s.deploymentId)
  t.equal(deployment.json().status, 'ignored', 'a deployment id passed off as a flow run id')
  const pool = await prefect.readWorkPool(s.pool)
  t.equal((await s.webhook(pool.id)).json().status, 'ignored', 'a work pool id passed off as a flow run id')

  // A served pool's run already owned by another party (Running) is left alone.
  const owned = await s.flowRun()
  await prefect.setState(owned, { type: 'PENDING', name: 'Pending' })
  await prefect.setState(owned, { type: 'RUNNING', name: 'Running' })
  const taken = await s.webhook(owned)
  t.equal(taken.json().status, 'ignored')
  t.equal(executionsOf(emulator, owned).length, 0)
  t.equal((await prefect.readFlowRun(owned)).state?.type, 'RUNNING')
})

t.test('{{ $NAME }} placeholders in a pool template never read pushpool\'s environment', async t => {
  // pushpool's secrets and a canary, in this process's environment, where a naive
  // `process.env[NAME]` would find them (Prefect's own worker renders them from os.environ).
  const secrets: Record<string, string> = {
    PREFECT_API_AUTH_STRING: peers.authString,
    PREFECT_API_KEY: `pnu_env_${randomBytes(16).toString('hex')}`,
    PUSHPOOL_WEBHOOK_SECRETS: `env-webhook-${randomBytes(16).toString('hex')}`,
    PUSHPOOL_ADMIN_TOKENS: `env-admin-${randomBytes(16).toString('hex')}`,
    PUSHPOOL_STORE_URL: `postgres://pushpool:envpw${randomBytes(8).toString('hex')}@127.0.0.1:1/pushpool`,
    PUSHPOOL_CANARY: `canary-${randomBytes(16).toString('hex')}`
  }
  const saved = Object.fromEntries(Object.keys(secrets).map(k => [k, process.env[k]]))
  Object.assign(process.env, secrets)
  t.teardown(() => { for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v } })

  const pool = `envread-${randomUUID().slice(0, 8)}`
  const template = await prefect.defaultBaseJobTemplate('cloud-run-v2')
  const blockId = await prefect.createGcpCredentialsBlock(`creds-${pool}`, { service_account_info: serviceAccountKey('proj-env'), project: 'proj-env' })
  template.variables.properties!.credentials.default = { $ref: { block_document_id: blockId } }
  const body = template.job_configuration.job_body as any
  const container = body.template.template.containers[0]
  const names = Object.keys(secrets)
  container.env = names.map(name => ({ name: `LEAK_${name}`, value: `{{ $${name} }}` }))
  container.args = names.map(name => `--${name.toLowerCase()}={{ $${name} }}`)
  body.template.template.serviceAccount = '{{ $PUSHPOOL_CANARY }}'
  body.labels = { leak: '{{ $PUSHPOOL_CANARY }}' }
  // Prefect accepts a template only if each placeholder, `$NAME` ones included, is a declared variable.
  for (const name of names) template.variables.properties![`$${name}`] = { type: 'string' }
  await prefect.createWorkPool(pool, 'cloud-run-v2', template)
  // The documented way to hand the job Prefect's credentials: a Secret Manager reference, so the
  // plain value pushpool holds is not put into the job either.
  const deploymentId = await prefect.createDeployment({
    name: `dep-${pool}`,
    flowId: await prefect.createFlow(`flow-${pool}`),
    workPoolName: pool,
    jobVariables: { prefect_api_auth_string_secret: { secret: 'prefect-auth-string', version: 'latest' } }
  })
  const logLines: string[] = []
  const app = await build(t, {
    logLines,
    env: {
      PREFECT_API_URL: peers.apiUrl,
      PREFECT_API_AUTH_STRING: peers.authString,
      PUSHPOOL_POOLS: pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint
    }
  })
  const run = (await prefect.createFlowRun(deploymentId)).id
  const res = await deliver(app, webhookPayload(run))
  t.equal(res.statusCode, 202)
  const settled = await settledDispatch(app, res.json().dispatch_id)
  t.equal(settled?.state, 'launched', JSON.stringify(settled))
  const [execution] = executionsOf(emulator, run)
  t.ok(execution, 'the job ran')
  const job = emulator.jobs().find(j => execution.name.startsWith(`${j.name}/`))
  const launched = JSON.stringify({ execution, job })
  for (const [name, value] of Object.entries(secrets)) {
    t.notOk(launched.includes(value), `${name}'s value is nowhere in the job or its execution`)
  }
  const env = execution.template?.containers?.[0]?.env ?? []
  for (const name of names) {
    t.same(env.find(v => v.name === `LEAK_${name}`)?.value ?? '', '', `{{ $${name} }} rendered as ""`)
  }
  t.same(execution.template?.containers?.[0]?.args, names.map(name => `--${name.toLowerCase()}=`), 'in args too')
  const auth = env.find(v => v.name === 'PREFECT_API_AUTH_STRING')
  t.same(auth?.valueSource, { secretKeyRef: { secret: 'prefect-auth-string', version: 'latest' } }, 'Prefect\'s auth reaches the job as a secret reference')
  t.notOk(logLines.join('\n').includes(peers.authString), 'and no log line has the auth string')
})

t.test('Prefect refusing pushpool\'s credentials is a 503 that says which setting to fix, never a 500', async t => {
  const wrong = 'pushpool-test:not-the-password-0123'
  const logLines: string[] = []
  const app = await build(t, { logLines, env: { PREFECT_API_URL: peers.apiUrl, PREFECT_API_AUTH_STRING: wrong, PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint } })
  const res = await post(app, webhookPayload(randomUUID()))
  t.equal(res.statusCode, 503)
  t.ok(isContractError(res.body), res.body)
  t.equal(res.json().code, 'PREFECT_UNAUTHORIZED')
  t.match(res.json().message, /PREFECT_API_AUTH_STRING.*PREFECT_API_KEY/, 'the message names the settings')
  t.notMatch(res.body + logLines.join('\n'), 'not-the-password', 'the credentials themselves are nowhere')
})
