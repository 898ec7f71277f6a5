// Cold start is Cloud Run's request latency whenever an instance starts, so start-up loads only
// what serving a webhook or a probe needs. The Google clients and their gRPC stack, the ID-token
// library, the PostgreSQL driver and a YAML parser are each loaded on first use: this test starts
// the server as production does, with each of those features configured, and holds it to that.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parentEnv, startService } from './service-process.ts'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const RECORDER = fileURLToPath(new URL('./record-imports.ts', import.meta.url))

/** Packages start-up must not load, with what loads them later. */
const LAZY = [
  '@google-cloud/run', // the first launch
  '@google-cloud/secret-manager', // the first secret read
  'google-gax',
  '@grpc/grpc-js', // the emulator endpoint's channel credentials, with the first launch
  'google-auth-library', // the first Google ID token to verify
  'pg', // a postgres:// store
  'yaml' // never at run time: the schemas come from src/openapi-schemas.ts
]

function packageOf (url: string): string | null {
  const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  return match === null ? null : match[1]
}

t.test('start-up, until /readyz answers, loads none of the packages that are loaded on first use', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-imports-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const record = join(dir, 'imports.json')
  const service = await startService(t, {
    args: ['--import', RECORDER, 'src/server.ts'],
    cwd: REPO,
    env: {
      ...parentEnv(),
      RECORD_IMPORTS_FILE: record,
      PUSHPOOL_STORE_URL: `sqlite:${join(dir, 'pushpool.db')}`,
      PUSHPOOL_WEBHOOK_SECRETS: 'imports-webhook-secret-0123456789',
      PUSHPOOL_ADMIN_TOKENS: 'imports-admin-token-0123456789',
      // Every feature that needs one of the lazy packages, configured.
      PUSHPOOL_AUDIENCE: 'https://pushpool.example',
      PUSHPOOL_ADMIN_PRINCIPALS: 'ops@example.com',
      PUSHPOOL_CLOUD_RUN_ENDPOINT: '127.0.0.1:9',
      PUSHPOOL_SECRET_MANAGER_ENDPOINT: '127.0.0.1:9',
      PUSHPOOL_GCP_CREDENTIALS_SECRET: 'projects/p/secrets/key',
      PREFECT_API_URL: 'http://127.0.0.1:9/api',
      LOG_LEVEL: 'silent'
    }
  })
  const { code } = await service.stop()
  t.equal(code, 0, service.output())
  const packages = new Set((JSON.parse(readFileSync(record, 'utf8')) as string[]).map(packageOf).filter(p => p !== null))
  // What serving needs is there, so the recording itself worked.
  for (const needed of ['fastify', 'pino', 'ajv']) t.ok(packages.has(needed), `${needed} is loaded`)
  for (const lazy of LAZY) t.notOk(packages.has(lazy), `${lazy} is not loaded at start-up`)
})
