// `pushpool setup` against a real Prefect server, with a real pushpool listening on loopback and
// the Cloud Run emulator behind it. The proof that setup works is end to end: after it, creating a
// flow run makes Prefect's own automation call pushpool's webhook, and the run is launched.
// Nothing here posts the webhook by hand.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { WEBHOOK_SECRET, adminHeaders, servingEnv } from '../helper.ts'
import { runCli } from '../cli/run-cli.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures, serviceAccountKey } from '../harness/prefect-fixtures.ts'
import { buildServer } from '../../src/server.ts'
import { loadConfig } from '../../src/config.ts'
import { startEmulator, type Emulator } from '../../src/emulator/index.ts'
import type { BaseJobTemplate, BlockDocument, WorkPool } from '../../src/prefect/types.ts'
import { runSetup, type SetupOptions, type SetupReport } from '../../src/setup/setup.ts'
import { formatReport } from '../../src/setup/report.ts'
import { defaultCloudRunV2Template } from '../../src/setup/work-pool.ts'
import { PAYLOAD_TEMPLATE } from '../../src/setup/automations.ts'
import type { Automation } from '../../src/setup/prefect-api.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const connection = { apiUrl: peers.apiUrl, authString: peers.authString, apiKey: null }
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const cliEnv = (secret = WEBHOOK_SECRET): Record<string, string> => ({
  PREFECT_API_URL: peers.apiUrl,
  PREFECT_API_AUTH_STRING: peers.authString,
  PUSHPOOL_WEBHOOK_SECRETS: secret
})

const newPoolName = (): string => `setup-${randomUUID().slice(0, 8)}`

const options = (pool: string, url: string, extra: Partial<SetupOptions> = {}): SetupOptions => ({
  url, pool, adopt: false, webhookSecret: WEBHOOK_SECRET, webhookSecretSource: 'PUSHPOOL_WEBHOOK_SECRETS', dryRun: false, ...extra
})

const exitMessage = (res: { code: number | null, stderr: string }): string => res.code === 0 ? 'exit 0' : `exit ${res.code}: ${res.stderr}`

const outcomes = (report: SetupReport): string[] => report.results.map(r => `${r.kind} ${r.name}: ${r.outcome}`)

/** pushpool serving `pool`, listening on a loopback port that the Prefect server calls. */
async function servePushpool (t: Test, pool: string): Promise<{ url: string, app: FastifyInstance }> {
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-setup-'))
  const app = await buildServer(loadConfig({
    ...servingEnv({ storeUrl: `sqlite:${join(dir, 'pushpool.db')}`, prefect: peers, pool, cloudRunEndpoint: emulator.endpoint }),
    LOG_LEVEL: 'silent'
  }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, app }
}

const readBlock = (name: string): Promise<BlockDocument> =>
  prefect.request('GET', `/block_types/slug/webhook/block_documents/name/${encodeURIComponent(name)}?include_secrets=true`)

const automationsNamed = (name: string): Promise<Automation[]> =>
  prefect.request('POST', '/automations/filter', { automations: { name: { any_: [name] } } })

const automationsOf = async (pool: string): Promise<Automation[]> =>
  [...await automationsNamed(`${pool}: dispatch`), ...await automationsNamed(`${pool}: cancel`)]

const poolOrNull = (name: string): Promise<WorkPool | null> =>
  prefect.readWorkPool(name).catch((err: { status?: number }) => { if (err.status === 404) return null; throw err })

const executionsOf = (emu: Emulator, flowRunId: string) => emu.executions().filter(e =>
  (e.template?.containers?.[0]?.env ?? []).some((v: { name: string, value?: string }) => v.name === 'PREFECT__FLOW_RUN_ID' && v.value === flowRunId))

interface ActionEvent { payload: { status_code?: number, response_body?: string }, related: Array<Record<string, string>> }

/** Prefect's record that an automation's action ran for the event with this id (a state id, for state changes). */
async function actionExecutedFor (automationId: string, triggeringEventId: string, timeoutMs = 20_000): Promise<ActionEvent> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const { events } = await prefect.request<{ events: ActionEvent[] }>('POST', '/events/filter', {
      filter: { event: { name: ['prefect.automation.action.executed'] }, resource: { id: [`prefect.automation.${automationId}`] } },
      limit: 50
    })
    const found = events.find(e => e.related.some(r => r['prefect.resource.role'] === 'triggering-event' &&
      r['prefect.resource.id'] === `prefect.event.${triggeringEventId}`))
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`automation ${automationId} did not act on event ${triggeringEventId} within ${timeoutMs} ms`)
    await sleep(250)
  }
}

// The pool of the end-to-end subtests, served by one pushpool for the whole file; the first subtest
// sets it up and the next ones run setup on it again.
const mainPool = newPoolName()
const main = { pool: mainPool, credentialsBlock: `creds-${mainPool}`, ...await servePushpool(t, mainPool) }

t.test('setup makes Prefect push a new flow run to pushpool, which launches it', async t => {
  const credentialsId = await prefect.createGcpCredentialsBlock(main.credentialsBlock, {
    service_account_info: serviceAccountKey('proj-setup'), project: 'proj-setup'
  })

  const progress: string[] = []
  const started = Date.now()
  const report = await runSetup(connection,
    options(main.pool, main.url, { credentialsBlock: main.credentialsBlock, region: 'europe-west1' }), line => progress.push(line))
  t.comment(`setup took ${Date.now() - started} ms`)
  t.same(outcomes(report), [
    `work pool ${main.pool}: create`,
    `webhook block ${main.pool}-pushpool: create`,
    `automation ${main.pool}: dispatch: create`,
    `automation ${main.pool}: cancel: create`
  ])
  t.ok(progress.length >= 4, 'progress was reported')

  // What Prefect now holds.
  const pool = await prefect.readWorkPool(main.pool)
  const template: BaseJobTemplate = defaultCloudRunV2Template()
  template.variables.properties!.region.default = 'europe-west1'
  template.variables.properties!.credentials.default = { $ref: { block_document_id: credentialsId } }
  t.equal(pool.type, 'cloud-run-v2')
  t.same(pool.base_job_template, template, 'the default template with the options\' defaults')
  const block = await readBlock(`${main.pool}-pushpool`)
  t.same(block.data, {
    url: `${main.url}/v1/webhooks/prefect`,
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${WEBHOOK_SECRET}` }
  })
  const [dispatch] = await automationsNamed(`${main.pool}: dispatch`)
  t.match(dispatch, {
    enabled: true,
    trigger: {
      type: 'event',
      posture: 'Reactive',
      expect: ['prefect.flow-run.*'],
      match: { 'prefect.resource.id': 'prefect.flow-run.*', 'prefect.state-type': 'SCHEDULED' },
      match_related: { 'prefect.resource.role': 'work-pool', 'prefect.resource.name': main.pool }
    },
    actions: [{ type: 'call-webhook', block_document_id: block.id, payload: PAYLOAD_TEMPLATE }]
  })

  // A run created as the UI's "Run" button does: Prefect emits Scheduled, the automation calls pushpool.
  const flowId = await prefect.createFlow(`flow-${main.pool}`)
  const deploymentId = await prefect.createDeployment({ name: `dep-${main.pool}`, flowId, workPoolName: main.pool })
  const run = await prefect.createFlowRun(deploymentId)
  const launched = await prefect.waitForFlowRunState(run.id, r => r.state?.type === 'PENDING' && r.infrastructure_pid !== null)
  t.comment(`flow run launched ${Date.now() - Date.parse(run.created ?? '')} ms after it was created`)
  const executions = executionsOf(emulator, run.id)
  t.equal(executions.length, 1, 'one execution')
  t.equal(launched.infrastructure_pid, executions[0].name, 'infrastructure_pid names the execution')

  const eventsFrom = Date.now()
  const executed = await actionExecutedFor(dispatch.id, run.state!.id)
  t.comment(`the automation's event was readable after ${Date.now() - eventsFrom} ms more`)
  t.equal(executed.payload.status_code, 202, 'Prefect\'s automation called the webhook and pushpool accepted it')
  const dispatches = await main.app.inject({ method: 'GET', url: `/v1/dispatches?flow_run_id=${run.id}`, headers: adminHeaders() })
  t.equal(dispatches.json().items.length, 1, 'pushpool recorded one dispatch')
  t.equal(JSON.parse(executed.payload.response_body ?? '{}').dispatch_id, dispatches.json().items[0].id, 'the one the webhook started')

  // The cancel automation reacts to Cancelling runs of the pool.
  const cancelling = await prefect.setState(run.id, { type: 'CANCELLING', name: 'Cancelling' }, true)
  const [cancel] = await automationsNamed(`${main.pool}: cancel`)
  const cancelFrom = Date.now()
  const cancelCall = await actionExecutedFor(cancel.id, cancelling.state!.id)
  t.comment(`the cancel automation acted within ${Date.now() - cancelFrom} ms`)
  t.type(cancelCall.payload.status_code, 'number', 'Prefect called pushpool for the Cancelling run')
})

t.test('running setup again (through the CLI) changes nothing', async t => {
  const before = { pool: await prefect.readWorkPool(main.pool), block: await readBlock(`${main.pool}-pushpool`), automations: await automationsOf(main.pool) }
  const started = Date.now()
  const res = await runCli(['setup', '--url', main.url, '--pool', main.pool, '--credentials-block', main.credentialsBlock], cliEnv())
  t.comment(`CLI setup took ${Date.now() - started} ms`)
  t.equal(res.code, 0, exitMessage(res))
  for (const line of [`work pool      "${main.pool}"`, `webhook block  "${main.pool}-pushpool"`, `automation     "${main.pool}: dispatch"`, `automation     "${main.pool}: cancel"`]) {
    t.match(res.stdout, `${line}`, `reports ${line.split('"')[1]}`)
  }
  t.equal(res.stdout.match(/ unchanged$/gm)?.length, 4, 'all four unchanged')
  t.match(res.stdout, 'prefect deployment run', 'says how to trigger a test run')
  t.match(res.stdout, `flow-${main.pool}/dep-${main.pool}`, 'naming a deployment of the pool')
  t.match(res.stderr, /\.\.\. Work pool/, 'progress on stderr')
  t.notMatch(res.stdout + res.stderr, WEBHOOK_SECRET, 'the secret is never printed')

  const pool = await prefect.readWorkPool(main.pool)
  t.same(pool.base_job_template, before.pool.base_job_template, 'the template is as it was (--region was kept)')
  t.same(await readBlock(`${main.pool}-pushpool`), before.block, 'the block was not written')
  t.same(await automationsOf(main.pool), before.automations, 'the automations were not written')
})

t.test('drift is repaired: a rotated secret, a disabled automation, a duplicate', async t => {
  const [dispatch] = await automationsNamed(`${main.pool}: dispatch`)
  const [cancel] = await automationsNamed(`${main.pool}: cancel`)
  await prefect.request('PATCH', `/automations/${cancel.id}`, { enabled: false })
  const { id: _id, created: _created, updated: _updated, ...copy } = dispatch as Automation & { updated: string }
  const { id: _triggerId, ...trigger } = copy.trigger
  await prefect.createAutomation({ ...copy, trigger })
  const rotated = 'rotated-webhook-secret-0123456789'

  const report = await runSetup(connection, options(main.pool, main.url, { webhookSecret: rotated }))
  t.same(outcomes(report), [
    `work pool ${main.pool}: unchanged`,
    `webhook block ${main.pool}-pushpool: update`,
    `automation ${main.pool}: dispatch: unchanged`,
    `automation ${main.pool}: dispatch: delete`,
    `automation ${main.pool}: cancel: update`
  ])
  t.same(report.results[1].changed, ['data.headers.Authorization'], 'names what changed, not the value')
  t.same(report.results[4].changed, ['enabled'])
  t.notMatch(formatReport(report), rotated, 'the report never shows the secret')
  t.equal(((await readBlock(`${main.pool}-pushpool`)).data.headers as Record<string, string>).Authorization, `Bearer ${rotated}`)
  t.equal((await automationsNamed(`${main.pool}: dispatch`)).length, 1, 'the duplicate is gone')
  t.equal((await automationsNamed(`${main.pool}: cancel`))[0].enabled, true)

  const again = await runSetup(connection, options(main.pool, main.url, { webhookSecret: rotated }))
  t.ok(again.results.every(r => r.outcome === 'unchanged'), 'then unchanged')
})

t.test('--dry-run prints the objects with the secret redacted, and creates nothing', async t => {
  const pool = newPoolName()
  const res = await runCli(['setup', '--url', 'http://127.0.0.1:8080', '--pool', pool, '--dry-run'], cliEnv())
  t.equal(res.code, 0, exitMessage(res))
  t.equal(res.stdout.match(/ would create$/gm)?.length, 4)
  t.match(res.stdout, '"url": "http://127.0.0.1:8080/v1/webhooks/prefect"')
  t.match(res.stdout, '"Authorization": "Bearer <the first secret in PUSHPOOL_WEBHOOK_SECRETS>"')
  t.match(res.stdout, `"prefect.state-type": "SCHEDULED"`)
  t.match(res.stdout, '"type": "cloud-run-v2"')
  t.notMatch(res.stdout + res.stderr, WEBHOOK_SECRET)
  t.equal(await poolOrNull(pool), null, 'no pool')
  await t.rejects(readBlock(`${pool}-pushpool`), { name: 'PrefectRequestError', message: /HTTP 404/ }, 'no block')
  t.same(await automationsOf(pool), [], 'no automations')

  // On existing objects a dry run says what would change, and changes nothing.
  const before = await readBlock(`${main.pool}-pushpool`)
  const report = await runSetup(connection, options(main.pool, main.url, { webhookSecret: 'yet-another-secret-0123456789', dryRun: true }))
  t.equal(report.results[1].outcome, 'update')
  t.match(formatReport(report), /would update \(data\.headers\.Authorization\)/)
  t.same(await readBlock(`${main.pool}-pushpool`), before, 'the block is untouched')
})

t.test('--service-account and --prefect-auth-string-secret: jobs run as the account and read Prefect\'s auth from Secret Manager', async t => {
  const pool = newPoolName()
  const served = await servePushpool(t, pool)
  const jobsAccount = 'pushpool-jobs@proj-setup.iam.gserviceaccount.com'
  await prefect.createGcpCredentialsBlock(`creds-${pool}`, { service_account_info: serviceAccountKey('proj-setup'), project: 'proj-setup' })
  const res = await runCli(['setup', '--url', served.url, '--pool', pool, '--credentials-block', `creds-${pool}`,
    '--service-account', jobsAccount, '--prefect-auth-string-secret', 'pushpool-prefect-auth-string'], cliEnv())
  t.equal(res.code, 0, exitMessage(res))
  const variables = (await prefect.readWorkPool(pool)).base_job_template.variables.properties!
  t.equal(variables.service_account_name.default, jobsAccount, 'the pool\'s default service account')
  t.same(variables.prefect_api_auth_string_secret.default, { secret: 'pushpool-prefect-auth-string', version: 'latest' }, 'the version defaults to latest')
  t.equal(variables.prefect_api_key_secret.default, null, 'the API key secret is not set')

  // A run the automation pushes: its job names the account and takes the auth string by reference.
  const deploymentId = await prefect.createDeployment({ name: `dep-${pool}`, flowId: await prefect.createFlow(`flow-${pool}`), workPoolName: pool })
  const run = await prefect.createFlowRun(deploymentId)
  await prefect.waitForFlowRunState(run.id, r => r.state?.type === 'PENDING' && r.infrastructure_pid !== null)
  const [execution] = executionsOf(emulator, run.id)
  const job = emulator.jobs().find(j => execution.name.startsWith(`${j.name}/`))
  t.equal(job?.template.template?.serviceAccount, jobsAccount, 'the job runs as the account')
  const env = execution.template.containers?.[0]?.env ?? []
  t.same(env.find(v => v.name === 'PREFECT_API_AUTH_STRING'), {
    name: 'PREFECT_API_AUTH_STRING', valueSource: { secretKeyRef: { secret: 'pushpool-prefect-auth-string', version: 'latest' } }
  }, 'PREFECT_API_AUTH_STRING comes from the secret')
  t.notOk(JSON.stringify({ execution, job }).includes(peers.authString), 'the auth string itself is nowhere in the job')
  const [dispatch] = (await served.app.inject({ method: 'GET', url: `/v1/dispatches?flow_run_id=${run.id}`, headers: adminHeaders() })).json().items
  const detail = (await served.app.inject({ method: 'GET', url: `/v1/dispatches/${dispatch.id}`, headers: adminHeaders() })).json()
  t.notMatch(JSON.stringify(detail.events), /plaintext/, 'and Prefect\'s plaintext-credential warning is not raised')

  const again = await runSetup(connection, options(pool, served.url))
  t.equal(again.results[0].outcome, 'unchanged', 'running setup again without the options keeps them')
})

t.test('--impersonate-service-account declares impersonate_service_account with that default, idempotently', async t => {
  const pool = newPoolName()
  const launcher = 'pushpool-launcher@proj-setup.iam.gserviceaccount.com'
  const help = await runCli(['setup', '--help'])
  t.match(help.stdout, /--impersonate-service-account <email>[\s\S]*roles\/iam\.serviceAccountTokenCreator/, '--help documents it')
  const bad = await runCli(['setup', '--url', 'http://127.0.0.1:8080', '--pool', pool, '--impersonate-service-account', 'alice@example.com'], cliEnv())
  t.equal(bad.code, 2)
  t.match(bad.stderr, '--impersonate-service-account must be a service account\'s email')

  const dry = await runCli(['setup', '--url', 'http://127.0.0.1:8080', '--pool', pool, '--impersonate-service-account', launcher, '--dry-run'], cliEnv())
  t.equal(dry.code, 0, exitMessage(dry))
  t.match(dry.stdout, /"impersonate_service_account": \{[^}]*"default": "pushpool-launcher@proj-setup\.iam\.gserviceaccount\.com"/, '--dry-run shows it')
  t.equal(await poolOrNull(pool), null, 'and creates nothing')

  const res = await runCli(['setup', '--url', 'http://127.0.0.1:8080', '--pool', pool, '--impersonate-service-account', launcher], cliEnv())
  t.equal(res.code, 0, exitMessage(res))
  const declared = (await prefect.readWorkPool(pool)).base_job_template.variables.properties!.impersonate_service_account
  t.match(declared, { type: 'string', default: launcher, title: 'Impersonate Service Account', description: /serviceAccountTokenCreator/ })

  const again = await runSetup(connection, options(pool, 'http://127.0.0.1:8080', { impersonateServiceAccount: launcher }))
  t.equal(again.results[0].outcome, 'unchanged', 'the same option again changes nothing')
  const without = await runSetup(connection, options(pool, 'http://127.0.0.1:8080'))
  t.equal(without.results[0].outcome, 'unchanged', 'nor does a run without the option: it keeps the account')
  const other = await runSetup(connection, options(pool, 'http://127.0.0.1:8080', { impersonateServiceAccount: 'team-b@proj-setup.iam.gserviceaccount.com' }))
  t.same(other.results[0].changed, ['base_job_template.variables.properties.impersonate_service_account.default'], 'another account changes only the default')
})

/** A template made by hand, not prefect-gcp's. */
const customTemplate: BaseJobTemplate = {
  job_configuration: { image: '{{ image }}' },
  variables: { type: 'object', properties: { image: { type: 'string', default: 'us-docker.pkg.dev/p/r/flows:1' } } }
}

t.test('--adopt serves an existing Cloud Run pool and leaves it as it is', async t => {
  const pool = newPoolName()
  await prefect.createWorkPool(pool, 'cloud-run', customTemplate, { concurrencyLimit: 3 })
  const before = await prefect.readWorkPool(pool)

  const res = await runCli(['setup', '--url', 'http://127.0.0.1:8080', '--pool', pool, '--adopt'], cliEnv())
  t.equal(res.code, 0, exitMessage(res))
  t.match(res.stdout, /work pool\s+"[^"]+"\s+unchanged \(adopted as it is, type cloud-run\)/)
  t.equal(res.stdout.match(/ created$/gm)?.length, 3, 'block and automations created')
  const after = await prefect.readWorkPool(pool)
  t.same(after.base_job_template, before.base_job_template, 'template untouched')
  t.equal(after.type, 'cloud-run')
  t.equal(after.concurrency_limit, 3)
  t.equal((await automationsOf(pool)).length, 2)

  const again = await runSetup(connection, options(pool, 'http://127.0.0.1:8080', { adopt: true }))
  t.ok(again.results.every(r => r.outcome === 'unchanged'), 'a second adopt changes nothing')
})

t.test('an existing cloud-run-v2 pool is brought to the default template; limits only when asked', async t => {
  const pool = newPoolName()
  await prefect.createWorkPool(pool, 'cloud-run-v2', customTemplate, { concurrencyLimit: 7 })
  const report = await runSetup(connection, options(pool, 'http://127.0.0.1:8080', { region: 'us-east4' }))
  t.equal(report.results[0].outcome, 'update')
  const expected = defaultCloudRunV2Template()
  expected.variables.properties!.region.default = 'us-east4'
  expected.variables.properties!.image.default = 'us-docker.pkg.dev/p/r/flows:1'
  const updated = await prefect.readWorkPool(pool)
  t.same(updated.base_job_template, expected, 'the default template, with --region and the pool\'s own image default')
  t.equal(updated.concurrency_limit, 7, 'the limit is left alone without --concurrency-limit')

  const limited = await runSetup(connection, options(pool, 'http://127.0.0.1:8080', { concurrencyLimit: 2 }))
  t.same(limited.results[0].changed, ['concurrency_limit'], 'only the limit changes; --region was kept')
  t.equal((await prefect.readWorkPool(pool)).concurrency_limit, 2)
})

t.test('what setup cannot do, it says, and exits 1', async t => {
  const pool = newPoolName()
  await prefect.createWorkPool(pool, 'process', customTemplate)
  await t.rejects(runSetup(connection, options(pool, 'http://127.0.0.1:8080')),
    { name: 'SetupFailure', message: /exists with type "process".*--adopt/ })
  await t.rejects(runSetup(connection, options(pool, 'http://127.0.0.1:8080', { adopt: true })),
    { name: 'SetupFailure', message: /can adopt only cloud-run/ })
  await t.rejects(runSetup(connection, options(newPoolName(), 'http://127.0.0.1:8080', { adopt: true })),
    { name: 'SetupFailure', message: /does not exist.*drop --adopt/ })
  await t.rejects(runSetup(connection, options(newPoolName(), 'http://127.0.0.1:8080', { credentialsBlock: 'no-such-block' })),
    { name: 'SetupFailure', message: /no GCP Credentials block named "no-such-block"/ })

  const refused = await runCli(['setup', '--url', 'http://127.0.0.1:8080'], { ...cliEnv(), PREFECT_API_AUTH_STRING: 'pushpool-test:wrong-password' })
  t.equal(refused.code, 1)
  t.match(refused.stderr, /credentials \(401\).*PREFECT_API_AUTH_STRING/)
  t.notMatch(refused.stderr, 'wrong-password')

  const notTheApi = await runCli(['setup', '--url', 'http://127.0.0.1:8080'], { ...cliEnv(), PREFECT_API_URL: peers.apiUrl.replace(/\/api$/, '') })
  t.equal(notTheApi.code, 1)
  t.match(notTheApi.stderr, /is PREFECT_API_URL .* the API URL, usually ending in \/api\?/)
})
