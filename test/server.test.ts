// buildServer's validateSchemas: the service skips checking schemas against the meta-schema to
// start faster, so the tests (test/helper.ts) turn it on, and it must catch a bad schema that
// compiling alone lets through (a non-string description). And main(): what a start that fails
// leaves in the log.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildServer } from '../src/server.ts'
import { loadConfig } from '../src/config.ts'
import { parentEnv } from './production/service-process.ts'

const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))

for (const validateSchemas of [true, false]) {
  t.test(`a route schema that is not JSON Schema ${validateSchemas ? 'fails' : 'passes'} start-up with validateSchemas: ${validateSchemas}`, async t => {
    const dir = mkdtempSync(join(tmpdir(), 'pushpool-server-'))
    t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
    const app = await buildServer(loadConfig({
      PUSHPOOL_STORE_URL: `sqlite:${join(dir, 'pushpool.db')}`,
      PUSHPOOL_WEBHOOK_SECRETS: 'server-webhook-secret-0123456789',
      LOG_LEVEL: 'silent'
    }), { validateSchemas })
    t.teardown(() => app.close())
    app.get('/bad', { schema: { querystring: { type: 'object', properties: { n: { type: 'integer', description: 5 } } } } }, async () => ({}))
    if (validateSchemas) await t.rejects(async () => { await app.ready() }, /schema is invalid/)
    else await t.resolves(async () => { await app.ready() })
  })
}

t.test('a start that cannot complete ends in one JSON log line, and process warnings are log lines too', async t => {
  const password = 'start-failure-password-0123'
  const child = spawn(process.execPath, [SERVER], {
    env: {
      ...parentEnv(),
      _TAPJS_PROCESSINFO_COVERAGE_: '0',
      PUSHPOOL_WEBHOOK_SECRETS: 'server-webhook-secret-0123456789',
      // Nothing listens on port 1; sslmode=require makes node-postgres emit its SECURITY WARNING.
      PUSHPOOL_STORE_URL: `postgres://pushpool:${password}@127.0.0.1:1/pushpool?sslmode=require`
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  t.equal(code, 1, 'exit 1')
  const lines = (text: string): Array<Record<string, unknown>> => text.split('\n').filter(line => line !== '').map(line => {
    try { return JSON.parse(line) as Record<string, unknown> } catch { return { notJson: line } }
  })
  const failure = lines(stderr)
  t.same(failure.map(l => l.severity), ['CRITICAL'], 'stderr is one CRITICAL log line')
  if (failure.length !== 1) t.comment(stderr)
  t.match(failure[0]?.message, /^pushpool cannot start: cannot open the PostgreSQL store at postgres:\/\/pushpool:\*\*\*@127\.0\.0\.1:1\/pushpool/)
  t.equal(failure[0]?.exit_code, 1)
  const logged = lines(stdout)
  t.same(logged.filter(l => 'notJson' in l), [], 'every stdout line is JSON')
  t.ok(logged.some(l => l.severity === 'WARNING' && /SECURITY WARNING/.test(String(l.message))), 'node-postgres\'s warning is a WARNING log line')
  t.notMatch(stdout + stderr, password, 'the password is nowhere')
})
