// Secret hygiene: distinctive values for every secret pushpool holds or reads — a
// service-account private key (in the pool's GCP Credentials block), Prefect's auth string, a
// Prefect API key, the webhook secret and the admin token — then a dispatch end to end: launched,
// crashed through reconcile, a permanent launch failure, a cancel, every admin read, the error
// replies, /metrics, trace-level logs. None of the values, nor their obvious encodings, may appear
// in any log line, admin response, error message (ours or the ones written to Prefect), metric, or
// in the ledger's database file.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures, serviceAccountKey } from '../harness/prefect-fixtures.ts'
import { executionsOf } from '../harness/scene.ts'
import { build, webhookPayload, deliverUntilPrefectAnswers } from '../helper.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { loadConfig, ConfigError } from '../../src/config.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

t.test('no secret reaches a log line, an admin response, an error message, a metric or the ledger', async t => {
  const key = serviceAccountKey('proj-secrets', 'secret-hygiene')
  const webhookSecret = `whsec-SECRET-${randomBytes(16).toString('hex')}`
  const adminToken = `admtok-SECRET-${randomBytes(16).toString('hex')}`
  const apiKey = `pnu_SECRET${randomBytes(16).toString('hex')}`
  const authString = peers.authString // the server only accepts its own; it is random per run

  // Every form a leak could take: raw, in an Authorization header, and each line of the PEM body
  // (a JSON-escaped key has "\n" where the PEM has newlines, so whole-key matching is not enough).
  const forbidden: Record<string, string> = {
    'webhook secret': webhookSecret,
    'admin token': adminToken,
    'Prefect API key': apiKey,
    'Prefect auth string': authString,
    'Prefect auth string password': authString.split(':').slice(1).join(':'),
    'Basic authorization': Buffer.from(authString).toString('base64')
  }
  key.private_key.split('\n').filter(line => line.length >= 40 && !line.startsWith('-----'))
    .forEach((line, i) => { forbidden[`private key line ${i + 1}`] = line })

  const { pool, deploymentId } = await prefect.servedPool('secrets', 'proj-secrets', { serviceAccountInfo: key })

  const logLines: string[] = []
  const app = await build(t, {
    logLines,
    env: {
      LOG_LEVEL: 'trace',
      PREFECT_API_URL: peers.apiUrl,
      PREFECT_API_AUTH_STRING: authString,
      PREFECT_API_KEY: apiKey,
      PUSHPOOL_WEBHOOK_SECRETS: `${webhookSecret},whsec-previous-0123456789abcdef`,
      PUSHPOOL_ADMIN_TOKENS: adminToken,
      PUSHPOOL_POOLS: pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
      PUSHPOOL_LAUNCH_ATTEMPTS: '1'
    }
  })

  const seen: Array<{ where: string, text: string }> = []
  const record = (where: string, res: LightMyRequestResponse): LightMyRequestResponse => {
    seen.push({ where, text: `${res.statusCode} ${JSON.stringify(res.headers)} ${res.body}` })
    return res
  }
  const admin = { authorization: `Bearer ${adminToken}` }
  // Delivered again while Prefect is too slow to read the run (503 PREFECT_UNAVAILABLE, nothing
  // recorded); every reply, the refused ones too, is inspected below.
  const webhook = async (flowRunId: string): Promise<LightMyRequestResponse> => await deliverUntilPrefectAnswers(
    async () => record(`webhook ${flowRunId}`,
      await app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: { authorization: `Bearer ${webhookSecret}`, 'content-type': 'application/json' }, payload: webhookPayload(flowRunId) })),
    async res => ({ status: res.statusCode, code: res.statusCode === 503 ? res.json().code : undefined }))
  const adminCall = async (method: 'GET' | 'POST', url: string): Promise<LightMyRequestResponse> =>
    record(`${method} ${url}`, await app.inject({ method, url, headers: admin }))

  // On a loaded machine Prefect can be too slow for a webhook's own drive, which then waits
  // (deferred, retrying), or the drive outlasts the webhook's deadline (claimed, launching) and goes
  // on: an operator's redrive drives it again until it has settled. The redrive answers 409 while
  // another drive owns the dispatch or once it has moved on, so the state is read from its detail.
  const settled = async (reply: LightMyRequestResponse): Promise<string> => {
    const id = reply.json().dispatch_id as string | undefined
    if (id === undefined) return `no dispatch: ${reply.statusCode}`
    const state = async (): Promise<string> => (await adminCall('GET', `/v1/dispatches/${id}`)).json().dispatch?.state as string
    let now = await state()
    for (const until = Date.now() + 60_000; ['received', 'claimed', 'deferred', 'retrying', 'launching'].includes(now) && Date.now() < until;) {
      await sleep(500)
      await adminCall('POST', `/v1/dispatches/${id}/redrive`)
      now = await state()
    }
    return now
  }

  // 1. A launch, then its execution fails and reconcile crashes the run.
  const crashedRun = (await prefect.createFlowRun(deploymentId)).id
  const launched = await webhook(crashedRun)
  t.equal(await settled(launched), 'launched', launched.body)
  const [execution] = executionsOf(emulator, crashedRun)
  emulator.finishExecution(execution.name, { exitCode: 1 })
  const report = await adminCall('POST', '/v1/reconcile')
  t.ok(Number(report.json().crashed) >= 1, 'reconcile crashed the run whose execution failed')
  t.equal((await prefect.readFlowRun(crashedRun)).state?.type, 'CRASHED')

  // 2. A permanent launch failure: the dispatch keeps an error, Prefect gets a crash message.
  emulator.addFault({ method: 'RunJob', code: 7, times: 1, message: 'Permission denied on resource project proj-secrets (or it may not exist).' })
  const failedRun = (await prefect.createFlowRun(deploymentId)).id
  const failed = await webhook(failedRun)
  t.equal(await settled(failed), 'submit_failed', failed.body)

  // 3. A launch that is then cancelled through the admin API.
  const cancelledRun = (await prefect.createFlowRun(deploymentId)).id
  const toCancel = await webhook(cancelledRun)
  t.equal(await settled(toCancel), 'launched', toCancel.body)
  const cancelled = await adminCall('POST', `/v1/dispatches/${toCancel.json().dispatch_id as string}/cancel`)
  t.equal(cancelled.statusCode, 200, cancelled.body)

  // 4. A duplicate, and every admin read.
  await webhook(cancelledRun)
  const list = await adminCall('GET', `/v1/dispatches?pool=${pool}&limit=200`)
  const ids = (list.json().items as Array<{ id: string }>).map(d => d.id)
  t.equal(ids.length, 3)
  for (const id of ids) {
    const detail = await adminCall('GET', `/v1/dispatches/${id}`)
    t.equal(detail.statusCode, 200)
    await adminCall('POST', `/v1/dispatches/${id}/redrive`)
  }
  const detail = await adminCall('GET', `/v1/dispatches/${launched.json().dispatch_id as string}`)
  // Reuse mode stores the shared job; the per-run env (Prefect's credentials among it) goes in
  // RunJob's overrides and is never stored.
  t.ok(detail.json().job_spec?.template, 'the job spec is shown')
  await adminCall('GET', '/v1/pools')
  await adminCall('POST', '/v1/reconcile')
  const metrics = await adminCall('GET', '/metrics')
  t.equal(metrics.statusCode, 200, '/metrics exists and was read')

  // 5. Error replies, including near misses with the real secrets in the wrong place.
  const bad = async (where: string, options: InjectOptions): Promise<void> => { record(where, await app.inject(options)) }
  await bad('webhook, admin token as secret', { method: 'POST', url: '/v1/webhooks/prefect', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, payload: webhookPayload(crashedRun) })
  await bad('webhook, secret with a typo', { method: 'POST', url: '/v1/webhooks/prefect', headers: { authorization: `Bearer ${webhookSecret}x`, 'content-type': 'application/json' }, payload: '{}' })
  await bad('webhook, secret as Basic', { method: 'POST', url: '/v1/webhooks/prefect', headers: { authorization: `Basic ${Buffer.from(authString).toString('base64')}`, 'content-type': 'application/json' }, payload: '{}' })
  await bad('webhook, bad body', { method: 'POST', url: '/v1/webhooks/prefect', headers: { authorization: `Bearer ${webhookSecret}`, 'content-type': 'application/json' }, payload: `{"resource_id":"prefect.flow-run.x","secret":"${apiKey}"`.slice(0, -5) })
  await bad('admin, webhook secret as token', { method: 'GET', url: '/v1/dispatches', headers: { authorization: `Bearer ${webhookSecret}` } })
  await bad('admin, token as Basic', { method: 'GET', url: '/v1/pools', headers: { authorization: `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}` } })
  await bad('admin, unknown dispatch', { method: 'GET', url: `/v1/dispatches/${randomUUID()}`, headers: admin })
  await bad('metrics without a token', { method: 'GET', url: '/metrics' })

  // 6. What pushpool wrote to Prefect: state messages of every run it touched.
  for (const run of [crashedRun, failedRun, cancelledRun]) {
    for (const state of await prefect.readStates(run)) seen.push({ where: `Prefect state ${state.type} of ${run}`, text: JSON.stringify({ name: state.name, message: state.message }) })
  }

  // 7. A configuration error names a bad variable but never echoes its value.
  try {
    loadConfig({ PUSHPOOL_WEBHOOK_SECRETS: webhookSecret, PREFECT_API_AUTH_STRING: authString.replace(':', ''), PUSHPOOL_ADMIN_TOKENS: adminToken.slice(0, 10) })
    t.fail('the configuration should have been refused')
  } catch (err) {
    t.ok(err instanceof ConfigError)
    seen.push({ where: 'ConfigError', text: (err as Error).message })
  }

  // 8. The ledger at rest (SQLite file and its WAL), where admin responses come from.
  const dbPath = app.config.storeUrl.slice('sqlite:'.length)
  for (const file of [dbPath, `${dbPath}-wal`]) {
    if (existsSync(file)) seen.push({ where: `ledger file ${file}`, text: readFileSync(file).toString('latin1') })
  }

  for (const [i, line] of logLines.entries()) seen.push({ where: `log line ${i + 1}`, text: line })
  t.ok(logLines.length > 50, `${logLines.length} log lines captured (trace level)`)
  t.ok(seen.length > logLines.length + 20, `${seen.length} texts inspected in all`)

  for (const [name, value] of Object.entries(forbidden)) {
    const leaks = seen.filter(s => s.text.includes(value)).map(s => s.where)
    t.same(leaks, [], `the ${name} appears nowhere`)
  }
})
