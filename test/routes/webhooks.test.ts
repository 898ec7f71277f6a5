// The webhook's refusal pipeline: each bad request gets its own status and code, and none is
// recorded as a dispatch. No peer is needed: every case is refused before Prefect is asked.
import t from 'tap'
import { build, webhookHeaders, webhookPayload, adminHeaders } from '../helper.ts'

const FLOW_RUN = '3f0c5a2e-1b7d-4c1a-9f3e-2d8b6a7c9e10'

t.test('bad webhooks are refused with their own codes and leave no dispatch', async t => {
  const app = await build(t)
  const cases: Array<{ name: string, headers: Record<string, string>, body: string | Buffer, status: number, code: string }> = [
    { name: 'missing secret', headers: { 'content-type': 'application/json' }, body: webhookPayload(FLOW_RUN), status: 401, code: 'WEBHOOK_UNAUTHORIZED' },
    { name: 'wrong secret', headers: webhookHeaders('not-the-secret-at-all-0000'), body: webhookPayload(FLOW_RUN), status: 401, code: 'WEBHOOK_UNAUTHORIZED' },
    { name: 'basic instead of bearer', headers: { ...webhookHeaders(), authorization: 'Basic dXNlcjpwYXNz' }, body: webhookPayload(FLOW_RUN), status: 401, code: 'WEBHOOK_UNAUTHORIZED' },
    { name: 'admin token on the webhook', headers: webhookHeaders(adminHeaders().authorization.slice(7)), body: webhookPayload(FLOW_RUN), status: 401, code: 'WEBHOOK_UNAUTHORIZED' },
    { name: 'not JSON content type', headers: { ...webhookHeaders(), 'content-type': 'text/plain' }, body: webhookPayload(FLOW_RUN), status: 415, code: 'WEBHOOK_UNSUPPORTED_MEDIA_TYPE' },
    { name: 'form content type', headers: { ...webhookHeaders(), 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b', status: 415, code: 'WEBHOOK_UNSUPPORTED_MEDIA_TYPE' },
    { name: 'oversize body', headers: webhookHeaders(), body: JSON.stringify({ resource_id: `prefect.flow-run.${FLOW_RUN}`, pad: 'x'.repeat(70 * 1024) }), status: 413, code: 'WEBHOOK_BODY_TOO_LARGE' },
    { name: 'invalid JSON', headers: webhookHeaders(), body: '{"resource_id": ', status: 400, code: 'WEBHOOK_INVALID_JSON' },
    { name: 'empty body', headers: webhookHeaders(), body: '', status: 400, code: 'WEBHOOK_INVALID_JSON' },
    { name: 'JSON array', headers: webhookHeaders(), body: '[1,2]', status: 400, code: 'WEBHOOK_INVALID_PAYLOAD' },
    { name: 'no resource id', headers: webhookHeaders(), body: '{"event":"prefect.flow-run.Scheduled"}', status: 400, code: 'WEBHOOK_INVALID_PAYLOAD' },
    { name: 'malformed flow run id', headers: webhookHeaders(), body: JSON.stringify({ resource_id: 'prefect.flow-run.not-a-uuid' }), status: 400, code: 'WEBHOOK_FOREIGN_RESOURCE' },
    { name: 'foreign resource', headers: webhookHeaders(), body: JSON.stringify({ resource_id: `prefect.deployment.${FLOW_RUN}` }), status: 400, code: 'WEBHOOK_FOREIGN_RESOURCE' },
    { name: 'path traversal in the id', headers: webhookHeaders(), body: JSON.stringify({ resource_id: `prefect.flow-run.${FLOW_RUN}/../../admin` }), status: 400, code: 'WEBHOOK_FOREIGN_RESOURCE' },
    { name: 'deeply nested JSON', headers: webhookHeaders(), body: '{"resource_id":"x","a":' + '['.repeat(5000) + ']'.repeat(5000) + '}', status: 400, code: 'WEBHOOK_INVALID_PAYLOAD' }
  ]
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: c.headers, payload: c.body })
    t.equal(res.statusCode, c.status, `${c.name}: status`)
    t.equal(res.json().code, c.code, `${c.name}: code`)
    t.type(res.json().message, 'string', `${c.name}: message`)
  }
  const list = await app.inject({ method: 'GET', url: '/v1/dispatches', headers: adminHeaders() })
  t.equal(list.statusCode, 200)
  t.same(list.json().items, [], 'no dispatch was recorded')
})

t.test('a rotated-out secret is refused and each listed secret is accepted past auth', async t => {
  const app = await build(t, { env: { PUSHPOOL_WEBHOOK_SECRETS: 'first-secret-0123456789,second-secret-0123456789' } })
  for (const secret of ['first-secret-0123456789', 'second-secret-0123456789']) {
    // Past auth, a malformed body proves the secret was accepted (400, not 401).
    const res = await app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(secret), payload: '{}' })
    t.equal(res.json().code, 'WEBHOOK_INVALID_PAYLOAD', `${secret.split('-')[0]} secret accepted`)
  }
  const old = await app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders('retired-secret-0123456789'), payload: '{}' })
  t.equal(old.json().code, 'WEBHOOK_UNAUTHORIZED')
})

t.test('prototype-pollution keys in the payload change nothing', async t => {
  const app = await build(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/webhooks/prefect',
    headers: webhookHeaders(),
    payload: '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"resource_id":"prefect.deployment.x"}'
  })
  t.equal(res.json().code, 'WEBHOOK_FOREIGN_RESOURCE')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
})
