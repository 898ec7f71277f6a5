// Admin authentication with every kind of credential, on the admin read routes and on a route
// guarded like POST /v1/reconcile. Google ID tokens are real RS256 JWTs verified by
// google-auth-library against certificates served on loopback.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { ADMIN_TOKEN, adminHeaders, build, webhookHeaders, webhookPayload } from '../helper.ts'
import { ADMIN_EMAIL, AUDIENCE, SCHEDULER_EMAIL, serveGoogleCerts, type GoogleCerts } from './google-certs.ts'
import { loadConfig } from '../../src/config.ts'
import configPlugin from '../../src/plugins/config.ts'
import errorsPlugin from '../../src/plugins/errors.ts'
import adminAuthPlugin from '../../src/plugins/admin-auth.ts'

const google = await serveGoogleCerts(t)

const authEnv = (certs: GoogleCerts, extra: Record<string, string> = {}): Record<string, string> => ({
  PUSHPOOL_AUDIENCE: AUDIENCE,
  PUSHPOOL_ADMIN_PRINCIPALS: `${ADMIN_EMAIL},serviceAccount:deployer@proj-test.iam.gserviceaccount.com`,
  PUSHPOOL_SCHEDULER_PRINCIPAL: SCHEDULER_EMAIL,
  PUSHPOOL_GOOGLE_CERTS_URL: certs.certsUrl,
  ...extra
})

const bearer = (credential: string): Record<string, string> => ({ authorization: `Bearer ${credential}` })
const hourAgo = Math.floor(Date.now() / 1000) - 3600

interface Case {
  name: string
  headers: Record<string, string>
  /** The status past authentication, for the list route; the detail route answers 404 for an unknown id. */
  status: 200 | 401 | 403
}

const cases = (certs: GoogleCerts): Case[] => [
  { name: 'no credentials', headers: {}, status: 401 },
  { name: 'empty bearer', headers: { authorization: 'Bearer ' }, status: 401 },
  { name: 'basic auth', headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` }, status: 401 },
  { name: 'wrong admin token', headers: adminHeaders('not-the-admin-token-0123456789'), status: 401 },
  { name: 'the webhook secret', headers: webhookHeaders(), status: 401 },
  { name: 'malformed JWT', headers: bearer('eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln'), status: 401 },
  { name: 'token signed by another key', headers: bearer(certs.forgedToken()), status: 401 },
  { name: 'token with an unknown key id', headers: bearer(certs.unknownKeyToken()), status: 401 },
  { name: 'expired token', headers: bearer(certs.token({ iat: hourAgo - 3600, exp: hourAgo })), status: 401 },
  { name: 'wrong audience', headers: bearer(certs.token({ aud: 'https://someone-else.a.run.app' })), status: 401 },
  { name: 'wrong issuer', headers: bearer(certs.token({ iss: 'https://evil.example.com' })), status: 401 },
  { name: 'valid token of an admin principal', headers: bearer(certs.token()), status: 200 },
  { name: 'email in another case', headers: bearer(certs.token({ email: ADMIN_EMAIL.toUpperCase() })), status: 200 },
  { name: 'principal listed in IAM member syntax', headers: bearer(certs.token({ email: 'deployer@proj-test.iam.gserviceaccount.com' })), status: 200 },
  { name: 'valid token, principal not allowed', headers: bearer(certs.token({ email: 'intruder@example.com' })), status: 403 },
  { name: 'valid token, email not verified', headers: bearer(certs.token({ email_verified: false })), status: 403 },
  { name: 'valid token without an email', headers: bearer(certs.token({ email: undefined })), status: 403 },
  { name: 'the scheduler is not an admin', headers: bearer(certs.token({ email: SCHEDULER_EMAIL })), status: 403 },
  { name: 'admin token', headers: adminHeaders(), status: 200 }
]

const CODES = { 401: 'ADMIN_UNAUTHORIZED', 403: 'ADMIN_FORBIDDEN' } as const

t.test('admin routes: each kind of credential gets its status and code', async t => {
  const app = await build(t, { env: authEnv(google) })
  const fetchesBefore = google.fetches()
  for (const c of cases(google)) {
    const list = await app.inject({ method: 'GET', url: '/v1/dispatches', headers: c.headers })
    const detail = await app.inject({ method: 'GET', url: `/v1/dispatches/${randomUUID()}`, headers: c.headers })
    t.equal(list.statusCode, c.status, `${c.name}: GET /v1/dispatches`)
    t.equal(detail.statusCode, c.status === 200 ? 404 : c.status, `${c.name}: GET /v1/dispatches/{id}`)
    if (c.status === 200) {
      t.same(list.json().items, [], `${c.name}: the list is answered`)
      t.equal(detail.json().code, 'DISPATCH_NOT_FOUND', `${c.name}: the detail route got past authentication`)
    } else {
      t.equal(list.json().code, CODES[c.status], `${c.name}: list code`)
      t.equal(detail.json().code, CODES[c.status], `${c.name}: detail code`)
    }
  }
  t.equal(google.fetches() - fetchesBefore, 1, 'the certificates were fetched once and cached')
})

t.test('a refused token is logged with its reason, never with the token', async t => {
  const logLines: string[] = []
  const app = await build(t, { env: authEnv(google), logLines })
  const tokens = [google.forgedToken(), google.token({ iat: hourAgo - 3600, exp: hourAgo }), google.token({ aud: 'https://x.a.run.app' })]
  for (const token of tokens) await app.inject({ method: 'GET', url: '/v1/dispatches', headers: bearer(token) })
  const reasons = logLines.map(line => JSON.parse(line) as { message: string, reason?: string })
    .filter(entry => entry.message === 'ID token refused').map(entry => entry.reason)
  t.same(reasons, ['Invalid token signature', 'Token used too late', 'Wrong recipient'])
  for (const token of tokens) {
    t.notOk(logLines.some(line => line.includes(token.split('.')[1])), 'no log line carries the token or its payload')
  }
})

t.test('the webhook accepts neither admin tokens nor ID tokens', async t => {
  const app = await build(t, { env: authEnv(google) })
  for (const [name, credential] of [['admin token', ADMIN_TOKEN], ['admin ID token', google.token()], ['scheduler ID token', google.token({ email: SCHEDULER_EMAIL })]]) {
    const res = await app.inject({
      method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(credential), payload: webhookPayload(randomUUID())
    })
    t.equal(res.statusCode, 401, name)
    t.equal(res.json().code, 'WEBHOOK_UNAUTHORIZED', name)
  }
})

t.test('without PUSHPOOL_AUDIENCE, ID tokens are refused and admin tokens still work', async t => {
  const app = await build(t, { env: { PUSHPOOL_ADMIN_PRINCIPALS: ADMIN_EMAIL, PUSHPOOL_GOOGLE_CERTS_URL: google.certsUrl } })
  const fetchesBefore = google.fetches()
  const byToken = await app.inject({ method: 'GET', url: '/v1/dispatches', headers: bearer(google.token()) })
  t.equal(byToken.statusCode, 401)
  t.equal(google.fetches(), fetchesBefore, 'Google was not asked')
  t.equal((await app.inject({ method: 'GET', url: '/v1/dispatches', headers: adminHeaders() })).statusCode, 200)
})

t.test('with nothing configured, the admin routes are closed', async t => {
  const app = await build(t, { env: { PUSHPOOL_ADMIN_TOKENS: '' } })
  const res = await app.inject({ method: 'GET', url: '/v1/dispatches', headers: adminHeaders() })
  t.equal(res.statusCode, 401)
})

t.test('when Google\'s certificates cannot be fetched: 503, and admin tokens still work', async t => {
  const app = await build(t, { env: authEnv(google, { PUSHPOOL_GOOGLE_CERTS_URL: 'http://127.0.0.1:9/oauth2/v1/certs' }) })
  const res = await app.inject({ method: 'GET', url: '/v1/dispatches', headers: bearer(google.token()) })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'ADMIN_AUTH_UNAVAILABLE')
  t.ok(res.headers['retry-after'], 'Retry-After is set')
  t.equal((await app.inject({ method: 'GET', url: '/v1/dispatches', headers: adminHeaders() })).statusCode, 200)
})

t.test('requireReconcileCaller admits admins and the Cloud Scheduler principal', async t => {
  const config = loadConfig({
    PUSHPOOL_WEBHOOK_SECRETS: 'test-webhook-secret-0123456789',
    PUSHPOOL_ADMIN_TOKENS: ADMIN_TOKEN,
    LOG_LEVEL: 'silent',
    ...authEnv(google)
  })
  // The real plugins on a bare instance, with one route guarded as POST /v1/reconcile is.
  const app = Fastify()
  await app.register(configPlugin, { config })
  await app.register(errorsPlugin)
  await app.register(adminAuthPlugin)
  app.post('/guarded', { preHandler: app.requireReconcileCaller }, async () => ({ ok: true }))
  t.teardown(() => app.close())

  const expectations: Array<[string, Record<string, string>, number]> = [
    ['no credentials', {}, 401],
    ['expired scheduler token', bearer(google.token({ email: SCHEDULER_EMAIL, iat: hourAgo - 3600, exp: hourAgo })), 401],
    ['scheduler token for another audience', bearer(google.token({ email: SCHEDULER_EMAIL, aud: 'https://other.a.run.app' })), 401],
    ['scheduler token', bearer(google.token({ email: SCHEDULER_EMAIL })), 200],
    ['admin principal token', bearer(google.token()), 200],
    ['admin token', adminHeaders(), 200],
    ['another service account', bearer(google.token({ email: 'other@proj-test.iam.gserviceaccount.com' })), 403]
  ]
  for (const [name, headers, status] of expectations) {
    const res = await app.inject({ method: 'POST', url: '/guarded', headers })
    t.equal(res.statusCode, status, name)
  }
})
