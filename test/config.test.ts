// src/config.ts compiles its env schema without checking it against the meta-schema (that would
// cost every cold start ~40 ms), so the check is made here; and the compiled validator still
// applies defaults and reports every bad variable at once.
import t from 'tap'
import { Ajv } from 'ajv'
import { ConfigError, envSchema, loadConfig } from '../src/config.ts'

t.test('the env schema is valid JSON Schema (draft-07)', async t => {
  const ajv = new Ajv({ strict: true })
  t.ok(ajv.validateSchema(envSchema), JSON.stringify(ajv.errors))
})

t.test('defaults apply and every problem is listed', async t => {
  const config = loadConfig({ PUSHPOOL_WEBHOOK_SECRETS: 'a-webhook-secret-0123456789' })
  t.equal(config.port, 8080)
  t.equal(config.storeUrl, 'sqlite:./data/pushpool.db')
  t.equal(config.jobMode, 'reuse')
  t.same(config.pools, ['pushpool'])
  const err = t.throws(() => loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', PUSHPOOL_WORKER_NAME: '-' })) as ConfigError
  t.ok(err instanceof ConfigError)
  t.same(err.problems, [
    'PUSHPOOL_WEBHOOK_SECRETS is required: comma-separated bearer secrets that the Prefect Webhook block sends',
    'PORT is invalid: expected a TCP port number',
    'PUSHPOOL_WORKER_NAME is invalid (must match pattern "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")',
    'LOG_LEVEL is invalid: expected one of fatal, error, warn, info, debug, trace, silent'
  ])
})
