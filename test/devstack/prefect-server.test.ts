// The test Prefect server (shared under `npm test`, private otherwise) behaves like the real thing
// pushpool meets in production: Basic auth, prefect-gcp pools and blocks, deployments, flow runs,
// and automations that call a webhook.

import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures, serviceAccountKey } from '../harness/prefect-fixtures.ts'

const server = await prefectServer()
const prefect = new PrefectFixtures(server.apiUrl, server.authString)
const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`

t.test('health is open, everything else needs the auth string', async (t) => {
  const health = await fetch(`${server.apiUrl}/health`)
  t.equal(health.status, 200)
  t.equal(await health.json(), true)

  const filterFlows = (authorization?: string): Promise<Response> => fetch(`${server.apiUrl}/flows/filter`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    body: '{}',
  })
  const anonymous = await filterFlows()
  t.equal(anonymous.status, 401)
  t.same(await anonymous.json(), { exception_message: 'Unauthorized' })
  t.equal((await filterFlows(`Basic ${Buffer.from('pushpool-test:wrong').toString('base64')}`)).status, 401)
  t.equal((await filterFlows(`Basic ${Buffer.from(server.authString).toString('base64')}`)).status, 200)
})

t.test('a cloud-run-v2 pool from the default template, a credentials block, a deployment and a run', async (t) => {
  const template = await prefect.defaultBaseJobTemplate('cloud-run-v2')
  t.ok(template.variables.properties?.image, 'the template has the prefect-gcp variables')
  t.match(template.job_configuration, { job_body: Object, credentials: '{{ credentials }}' })

  const key = serviceAccountKey('proj-devstack')
  t.equal(key.type, 'service_account')
  t.match(key.private_key, /^-----BEGIN PRIVATE KEY-----\n/)
  const blockId = await prefect.createGcpCredentialsBlock(unique('creds'), { service_account_info: key, project: 'proj-devstack' })
  const block = await prefect.request<{ data: { service_account_info: { private_key: string }, project: string } }>(
    'GET', `/block_documents/${blockId}?include_secrets=true`)
  t.equal(block.data.project, 'proj-devstack')
  t.equal(block.data.service_account_info.private_key, key.private_key, 'the key is stored, and readable with secrets')

  const poolName = unique('pool')
  template.variables.properties!.credentials!.default = { $ref: { block_document_id: blockId } }
  await prefect.createWorkPool(poolName, 'cloud-run-v2', template, { concurrencyLimit: 3 })
  const pool = await prefect.readWorkPool(poolName)
  t.equal(pool.type, 'cloud-run-v2')
  t.equal(pool.concurrency_limit, 3)
  t.same(pool.base_job_template, template)

  const flowId = await prefect.createFlow(unique('flow'))
  const deploymentId = await prefect.createDeployment({
    name: unique('deployment'), flowId, workPoolName: poolName, jobVariables: { cpu: '2000m' },
  })
  const deployment = await prefect.readDeployment(deploymentId)
  t.equal(deployment.work_pool_name, poolName)
  t.same(deployment.job_variables, { cpu: '2000m' })

  const created = await prefect.createFlowRun(deploymentId, { jobVariables: { memory: '1Gi' } })
  const run = await prefect.readFlowRun(created.id)
  t.equal(run.state?.type, 'SCHEDULED')
  t.equal(run.work_pool_name, poolName)
  t.same(run.job_variables, { memory: '1Gi' })
  t.same((await prefect.readStates(run.id)).map((s) => s.type), ['SCHEDULED'])

  const result = await prefect.setState(run.id, { type: 'PENDING', name: 'Pending' })
  t.equal(result.status, 'ACCEPT')
  const pending = await prefect.waitForFlowRunState(run.id, ['PENDING'], 5_000)
  t.equal(pending.state?.name, 'Pending')
  await t.rejects(prefect.waitForFlowRunState(run.id, ['COMPLETED'], 300), /did not reach COMPLETED within 300 ms; it is PENDING/)
})

t.test('a flow run scheduled in a pool fires an automation that calls a webhook', async (t) => {
  const received: unknown[] = []
  const hook = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => { body += chunk.toString('utf8') })
    req.on('end', () => {
      received.push({ authorization: req.headers.authorization, body: JSON.parse(body) })
      res.writeHead(202).end()
    })
  })
  hook.listen(0, '127.0.0.1')
  await once(hook, 'listening')
  t.teardown(() => { hook.close() })
  const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`

  const poolName = unique('pool')
  await prefect.createWorkPool(poolName, 'cloud-run-v2', await prefect.defaultBaseJobTemplate('cloud-run-v2'))
  const webhookId = await prefect.createWebhookBlock(unique('hook'), {
    url: hookUrl, headers: { 'content-type': 'application/json', authorization: 'Bearer hook-secret' },
  })
  await prefect.createAutomation({
    name: unique('automation'),
    trigger: {
      type: 'event',
      posture: 'Reactive',
      expect: ['prefect.flow-run.*'],
      match: { 'prefect.resource.id': 'prefect.flow-run.*', 'prefect.state-type': 'SCHEDULED' },
      match_related: { 'prefect.resource.role': 'work-pool', 'prefect.resource.name': poolName },
      threshold: 1,
      within: 0,
    },
    actions: [{
      type: 'call-webhook',
      block_document_id: webhookId,
      payload: '{"flow_run_id": "{{ event.resource.id }}", "event": "{{ event.event }}"}',
    }],
  })

  const flowId = await prefect.createFlow(unique('flow'))
  const deploymentId = await prefect.createDeployment({ name: unique('deployment'), flowId, workPoolName: poolName })
  const run = await prefect.createFlowRun(deploymentId)

  const deadline = Date.now() + 20_000
  while (received.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(received, [{
    authorization: 'Bearer hook-secret',
    body: { flow_run_id: `prefect.flow-run.${run.id}`, event: 'prefect.flow-run.Scheduled' },
  }])
})

// The scheduler service inserts a deployment schedule's runs itself (no API call, no event). It
// broke under SQLAlchemy 2.1 ("Can't evaluate bulk DML statement"), hence the venv's cap.
t.test("a deployment's interval schedule makes the server's scheduler insert runs", async (t) => {
  const poolName = unique('pool')
  await prefect.createWorkPool(poolName, 'cloud-run-v2', await prefect.defaultBaseJobTemplate('cloud-run-v2'))
  const flowId = await prefect.createFlow(unique('flow'))
  const intervalS = 600
  const anchor = '2026-01-01T00:00:00Z'
  const before = Date.now()
  const deploymentId = await prefect.createDeployment({
    name: unique('deployment'), flowId, workPoolName: poolName,
    schedules: [{ schedule: { interval: intervalS, anchor_date: anchor, timezone: 'UTC' }, slug: 'every-10-min' }],
  })
  const [schedule] = await prefect.readDeploymentSchedules(deploymentId)
  t.equal(schedule?.slug, 'every-10-min')

  // The harness server runs the scheduler loop every second (PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS).
  let runs = await prefect.readDeploymentFlowRuns(deploymentId)
  const deadline = Date.now() + 30_000
  while (runs.length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    runs = await prefect.readDeploymentFlowRuns(deploymentId)
  }
  t.comment(`${runs.length} runs inserted within ${Date.now() - before} ms`)
  // Prefect's defaults: at least 3 runs (…_SCHEDULER_MIN_RUNS) and at least 1 h ahead (…_MIN_SCHEDULED_TIME).
  if (!t.ok(runs.length >= 3, `the scheduler inserted at least 3 runs (got ${runs.length})`)) return
  for (const run of runs) {
    t.match(run, {
      auto_scheduled: true,
      created_by: { type: 'SCHEDULE', id: schedule!.id },
      work_pool_name: poolName,
      state: { type: 'SCHEDULED', name: 'Scheduled' },
    })
  }
  const starts = runs.map((run) => Date.parse(run.expected_start_time!))
  t.ok(starts[0]! >= before - 1000, 'the first run is due after the schedule was made')
  t.ok(starts.every((ms) => (ms - Date.parse(anchor)) % (intervalS * 1000) === 0), 'every run is on the schedule\'s grid')
  t.same(starts.slice(1).map((ms, i) => ms - starts[i]!), starts.slice(1).map(() => intervalS * 1000), 'one run per interval, none skipped')
  t.ok(starts.at(-1)! >= before + 3600_000, 'runs cover at least the next hour')

  await prefect.deleteDeploymentSchedule(deploymentId, schedule!.id)
  t.same(await prefect.readDeploymentFlowRuns(deploymentId), [], "deleting the schedule deletes the runs it made that haven't started")
})
