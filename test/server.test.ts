// buildServer's validateSchemas: the service skips checking schemas against the meta-schema to
// start faster, so the tests (test/helper.ts) turn it on, and it must catch a bad schema that
// compiling alone lets through (a non-string description).
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildServer } from '../src/server.ts'
import { loadConfig } from '../src/config.ts'

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
