// src/config.ts checks the environment against envSchema itself rather than compiling it with Ajv
// (which cost every cold start ~40 ms), so here envSchema is held to JSON Schema and that check to
// what Ajv reports; and loadConfig applies defaults and reports every bad variable at once.
import t from 'tap'
import { Ajv } from 'ajv'
import { readFileSync } from 'node:fs'
import { ConfigError, VARIABLES, checkEnv, envSchema, loadConfig } from '../src/config.ts'

t.test('the env schema is valid JSON Schema (draft-07)', async t => {
  const ajv = new Ajv({ strict: true })
  t.ok(ajv.validateSchema(envSchema), JSON.stringify(ajv.errors))
})

t.test('checkEnv reports what Ajv reports for envSchema, in the same order, and fills in the same defaults', async t => {
  const validate = new Ajv({ allErrors: true, useDefaults: true, strict: true }).compile(envSchema)
  const names = Object.keys(envSchema.properties)
  const good: Record<string, string> = { PUSHPOOL_WEBHOOK_SECRETS: 'a-webhook-secret-0123456789' }
  const cases: Array<Record<string, string>> = [
    {},
    good,
    { ...good, HOST: '0.0.0.0', PUSHPOOL_JOB_MODE: 'per-run', PUSHPOOL_STORE_URL: 'postgres://u:p@h/d', PUSHPOOL_CLOUD_RUN_ENDPOINT: 'localhost:8085' },
    { PORT: 'eighty', LOG_LEVEL: 'loud', PUSHPOOL_WORKER_NAME: '-', PUSHPOOL_JOB_MODE: 'sometimes' },
    { ...good, HOST: '' }, // loadConfig drops empty values; checkEnv alone still applies minLength
    // Every variable at once with a value no pattern or enum takes (a space, then a newline-only value).
    Object.fromEntries(names.map(name => [name, ' '])),
    Object.fromEntries(names.map(name => [name, '\n'])),
    { ...good, PREFECT_API_AUTH_STRING: 'no-colon', PUSHPOOL_GCP_CREDENTIALS_SECRET: 'projects/p/secrets/s/versions/1', PUSHPOOL_LAUNCH_ATTEMPTS: '11' }
  ]
  for (const env of cases) {
    const ours = { ...env }
    const theirs = { ...env }
    const errors = checkEnv(ours)
    validate(theirs)
    const expected = (validate.errors ?? []).map(err => ({
      name: err.instancePath.slice(1) || String(err.params.missingProperty),
      keyword: err.keyword,
      message: err.message
    }))
    t.same(errors, expected, JSON.stringify(env))
    t.same(ours, theirs, 'defaults')
  }
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
    'PUSHPOOL_WEBHOOK_SECRETS is required: comma-separated bearer secrets that the Prefect Webhook block sends, each at least 16 characters',
    'PORT is invalid: expected a TCP port number up to 65535 (0: any free port)',
    'PUSHPOOL_WORKER_NAME is invalid: expected letters, digits, "_", "." or "-", starting with a letter or digit, at most 63 characters',
    'LOG_LEVEL is invalid: expected one of fatal, error, warn, info, debug, trace, silent'
  ])
})

t.test('what a pattern cannot say is checked too, and every message says what a good value is, never the value', async t => {
  const err = t.throws(() => loadConfig({
    PUSHPOOL_WEBHOOK_SECRETS: 'long-enough-secret-0123,short',
    PORT: '70000',
    PUSHPOOL_PREFETCH_SECONDS: '-1',
    PUSHPOOL_WEBHOOK_DEADLINE_MS: '12',
    PUSHPOOL_ADMIN_TOKENS: 'tiny'
  })) as ConfigError
  t.same(err.problems, [
    'PUSHPOOL_PREFETCH_SECONDS is invalid: expected whole seconds from 0 to 99999',
    'PUSHPOOL_WEBHOOK_DEADLINE_MS is invalid: expected milliseconds, from 100 to 99999; keep it below Prefect\'s 10 s webhook timeout',
    'PORT is invalid: must be from 0 to 65535 (expected a TCP port number up to 65535 (0: any free port))',
    'PUSHPOOL_WEBHOOK_SECRETS is invalid: each secret must be at least 16 characters (expected comma-separated bearer secrets that the Prefect Webhook block sends, each at least 16 characters)',
    'PUSHPOOL_ADMIN_TOKENS is invalid: each token must be at least 16 characters (expected comma-separated admin bearer tokens, each at least 16 characters)'
  ])
  t.notMatch(err.message, /short|tiny|70000|-1|\b12\b/, 'no value is echoed')
})

t.test('every declared variable has a hint, and the README\'s configuration table lists each one', async t => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  for (const [key, spec] of Object.entries(VARIABLES)) {
    t.ok(spec.hint.length > 10, `${spec.env} (${key}) says what a good value is`)
    t.match(readme, new RegExp(`\\| \`${spec.env}\` \\|`), `README documents ${spec.env}`)
  }
})
