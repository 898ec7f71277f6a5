// The production artifact restores the routes' validators and serializers that scripts/build.ts
// compiled ahead of time (scripts/precompile-schemas.ts) instead of compiling them at start-up.
// They must behave as the ones the sources compile: the same requests, to a server started from
// the sources and to one started from the artifact, get the same answers.
import t from 'tap'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { builtArtifact, temporaryDir } from './artifact.ts'
import { parentEnv, startService, type ServiceProcess } from './service-process.ts'
import { ADMIN_TOKEN, WEBHOOK_SECRET, adminHeaders } from '../helper.ts'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const MISSING = '7b0c1e52-2a5e-4b8e-9d43-0f6f1d2c3b4a'

/** Requests that reach every kind of compiled schema: querystrings, params, responses; valid and not. */
const REQUESTS: Array<{ method: string, path: string, admin?: boolean, body?: string }> = [
  { method: 'GET', path: '/healthz' },
  { method: 'GET', path: '/readyz' },
  { method: 'HEAD', path: '/readyz' },
  { method: 'GET', path: '/v1/dispatches', admin: true },
  { method: 'GET', path: '/v1/dispatches?limit=5&state=launched&since=2026-01-01T00:00:00Z', admin: true },
  { method: 'GET', path: '/v1/dispatches?limit=500', admin: true },
  { method: 'GET', path: '/v1/dispatches?limit=ten', admin: true },
  { method: 'GET', path: '/v1/dispatches?state=bogus', admin: true },
  { method: 'GET', path: '/v1/dispatches?flow_run_id=not-a-uuid', admin: true },
  { method: 'GET', path: '/v1/dispatches?unknown=1', admin: true },
  { method: 'GET', path: `/v1/dispatches/${MISSING}`, admin: true },
  { method: 'GET', path: '/v1/dispatches/not-a-uuid', admin: true },
  { method: 'POST', path: `/v1/dispatches/${MISSING}/cancel`, admin: true },
  { method: 'POST', path: '/v1/dispatches/not-a-uuid/redrive', admin: true },
  { method: 'GET', path: '/v1/dispatches' },
  { method: 'POST', path: '/v1/webhooks/prefect', body: '{}' }
]

async function answers (server: ServiceProcess): Promise<string[]> {
  const out: string[] = []
  for (const r of REQUESTS) {
    const headers: Record<string, string> = { ...(r.admin === true ? adminHeaders() : {}), ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}) }
    const res = await fetch(`${server.url}${r.path}`, { method: r.method, headers, ...(r.body !== undefined ? { body: r.body } : {}) })
    out.push(`${r.method} ${r.path} → ${res.status} ${await res.text()}`)
  }
  return out
}

t.test('the artifact answers as the sources do, with the schemas compiled at build time', async t => {
  const dir = temporaryDir(t, 'pushpool-artifact-')
  const dist = await builtArtifact(t)

  const env = (name: string): Record<string, string | undefined> => ({
    ...parentEnv(),
    PUSHPOOL_STORE_URL: `sqlite:${join(dir, `${name}.db`)}`,
    PUSHPOOL_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    PUSHPOOL_ADMIN_TOKENS: ADMIN_TOKEN,
    PREFECT_API_URL: 'http://127.0.0.1:9/api',
    LOG_LEVEL: 'silent'
  })
  const sources = await startService(t, { args: ['src/server.ts'], cwd: REPO, env: env('sources') })
  const artifact = await startService(t, { args: [join(dist, 'server.js')], cwd: REPO, env: env('artifact') })
  const expected = await answers(sources)
  t.same(await answers(artifact), expected, 'the same statuses and bodies')
  t.ok(expected.some(a => / → 400 /.test(a)) && expected.some(a => / → 200 \{/.test(a)), 'both rejections and serialized replies were compared')
})
