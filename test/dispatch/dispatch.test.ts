// The core path against real peers: a real Prefect server (harness), pushpool's gRPC emulator
// driven by the real @google-cloud/run client, and the app through inject().
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { adminHeaders, WEBHOOK_SECRET, ADMIN_TOKEN } from '../helper.ts'
import { scene, executionsOf, type Scene, type SceneOptions } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const stage = (t: Test, options?: SceneOptions): Promise<Scene> => scene(t, prefect, peers, emulator, options)
const post = (s: Scene, flowRunId: string) => s.webhook(flowRunId)

t.test('main path: Pending accepted, one execution with the run\'s env and job variables', async t => {
  const s = await stage(t, { jobVariables: { image: 'us-docker.pkg.dev/p/r/flows:1', cpu: '2000m', memory: '1Gi', timeout: 900 } })
  const flowRunId = await s.flowRun()
  const res = await post(s, flowRunId)
  t.equal(res.statusCode, 202)
  t.equal(res.json().state, 'launched', JSON.stringify((await s.detail(res.json().dispatch_id)).events))

  const run = await prefect.readFlowRun(flowRunId)
  t.equal(run.state?.type, 'PENDING', 'Prefect accepted Pending')
  const executions = executionsOf(emulator, flowRunId)
  t.equal(executions.length, 1, 'exactly one execution')
  const execution = executions[0]
  t.equal(run.infrastructure_pid, execution.name, 'infrastructure_pid names the execution')
  const container = execution.template.containers![0]
  const env = Object.fromEntries((container.env ?? []).map(e => [e.name, e.value]))
  t.equal(env.PREFECT__FLOW_RUN_ID, flowRunId)
  t.equal(env.PREFECT_API_URL, peers.apiUrl)
  t.equal(env.PREFECT_API_AUTH_STRING, peers.authString, 'Prefect auth reaches the container')
  t.equal(container.image, 'us-docker.pkg.dev/p/r/flows:1')
  t.equal(container.resources?.limits?.cpu, '2000m')
  t.equal(container.resources?.limits?.memory, '1Gi')
  t.equal(execution.template.timeout, '900s')
  t.match(execution.name, /^projects\/proj-test\/locations\/us-central1\/jobs\/[a-z][-a-z0-9]+\/executions\//)

  const d = await s.detail(res.json().dispatch_id)
  t.same(d.events.map((e: { type: string }) => e.type), ['received', 'claimed', 'pending_accepted', 'launching', 'launched'])
  t.equal(d.dispatch.execution_name, execution.name)
  const storedEnv: Array<{ name: string, value?: string }> = d.job_spec.template.template.containers[0].env ?? []
  t.notOk(JSON.stringify(d).includes(peers.authString), 'the auth string is not in the admin view')
  t.equal(storedEnv.find(e => e.name === 'PREFECT__FLOW_RUN_ID')?.value, flowRunId, 'the per-run env is shown, not only the shared job\'s')
  t.equal(storedEnv.find(e => e.name === 'PREFECT_API_AUTH_STRING')?.value, '[redacted]', 'redacted')
  t.ok(d.dispatch.deployment_name !== null && d.dispatch.flow_name !== null, 'the listing names the deployment and the flow')
  t.match(d.dispatch.scheduled_at, /Z$/, 'and when the run was due')
})

t.test('the same webhook 10 times in sequence and 10 concurrently: one dispatch, one execution', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  const sequential = []
  for (let i = 0; i < 10; i++) sequential.push(await post(s, flowRunId))
  const concurrent = await Promise.all(Array.from({ length: 10 }, () => post(s, flowRunId)))
  const all = [...sequential, ...concurrent]
  t.equal(all.filter(r => r.statusCode === 202).length, 1, 'one webhook started the dispatch')
  t.ok(all.every(r => r.statusCode === 202 || r.json().status === 'duplicate'), 'the rest are duplicates')
  t.equal(new Set(all.map(r => r.json().dispatch_id)).size, 1, 'all name the same dispatch')
  t.equal(executionsOf(emulator, flowRunId).length, 1, 'one execution')
  const list = await s.app.inject({ method: 'GET', url: `/v1/dispatches?flow_run_id=${flowRunId}`, headers: adminHeaders() })
  t.equal(list.json().items.length, 1)
})

t.test('concurrent first delivery races to one dispatch', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  const all = await Promise.all(Array.from({ length: 10 }, () => post(s, flowRunId)))
  t.equal(all.filter(r => r.statusCode === 202).length, 1)
  t.equal(executionsOf(emulator, flowRunId).length, 1)
})

t.test('a run something else already moved to Pending is recorded as skipped', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  await prefect.setState(flowRunId, { type: 'PENDING', name: 'Pending' }, true)
  const res = await post(s, flowRunId)
  t.equal(res.statusCode, 200)
  t.equal(res.json().state, 'skipped')
  t.equal(executionsOf(emulator, flowRunId).length, 0, 'no execution')
  const d = await s.detail(res.json().dispatch_id)
  t.equal(d.dispatch.state, 'skipped')
})

t.test('transient failure: UNAVAILABLE twice, then one execution; the log shows every attempt', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  emulator.addFault({ method: 'RunJob', code: 14, times: 2, message: 'try again' })
  t.teardown(() => emulator.clearFaults())
  const res = await post(s, flowRunId)
  t.equal(res.statusCode, 202)
  t.equal(res.json().state, 'launched')
  t.equal(executionsOf(emulator, flowRunId).length, 1)
  const d = await s.detail(res.json().dispatch_id)
  const failed = d.events.filter((e: { type: string }) => e.type === 'attempt_failed')
  t.equal(failed.length, 2, 'two failed attempts logged')
  t.match(failed[0].detail, /UNAVAILABLE/)
  t.equal(d.dispatch.attempts, 3, 'three RunJob calls in all')
})

t.test('transient failure after the execution was created: adopted, never run twice', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  emulator.addFault({ method: 'RunJob', code: 14, times: 1, afterEffect: true })
  t.teardown(() => emulator.clearFaults())
  const res = await post(s, flowRunId)
  t.equal(res.json().state, 'launched')
  t.equal(executionsOf(emulator, flowRunId).length, 1, 'the lost reply did not cause a second execution')
  const d = await s.detail(res.json().dispatch_id)
  t.match(d.events.at(-1).detail, /adopted/)
})

t.test('permanent failure: INVALID_ARGUMENT crashes the run with a message naming the cause', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  emulator.addFault({ method: 'RunJob', code: 3, times: 1, message: 'template.containers[0].image: bad reference' })
  t.teardown(() => emulator.clearFaults())
  const res = await post(s, flowRunId)
  t.equal(res.json().state, 'submit_failed')
  const run = await prefect.readFlowRun(flowRunId)
  t.equal(run.state?.type, 'CRASHED')
  t.match(run.state?.message, /^Failed to submit flow run to infrastructure: .*INVALID_ARGUMENT.*bad reference/)
  t.equal(executionsOf(emulator, flowRunId).length, 0)
})

t.test('per-run mode: a job per flow run, named by Prefect\'s rule', async t => {
  const s = await stage(t, { env: { PUSHPOOL_JOB_MODE: 'per-run' } })
  const flowRunId = await s.flowRun()
  const res = await post(s, flowRunId)
  t.equal(res.json().state, 'launched')
  const run = await prefect.readFlowRun(flowRunId)
  const executions = executionsOf(emulator, flowRunId)
  t.equal(executions.length, 1)
  const jobId = executions[0].name.split('/')[5]
  t.match(jobId, /^[a-z0-9-]{1,55}-[0-9a-f]{7}$/)
  t.ok(jobId.startsWith(run.name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 20)), 'the job id starts with the flow run name')
})

t.test('runs of pools this pushpool does not serve are ignored', async t => {
  const s = await stage(t, { env: { PUSHPOOL_POOLS: 'some-other-pool' } })
  const flowRunId = await s.flowRun()
  const res = await post(s, flowRunId)
  t.equal(res.statusCode, 200)
  t.equal(res.json().status, 'ignored')
  t.match(res.json().reason, /not served/)
  const missing = await post(s, randomUUID())
  t.equal(missing.json().status, 'ignored')
  t.match(missing.json().reason, /does not exist/)
})

t.test('logs: JSON with Cloud Logging severity, ids on every dispatch line, no secret anywhere', async t => {
  const logLines: string[] = []
  const s = await stage(t, { logLines })
  const flowRunId = await s.flowRun()
  emulator.addFault({ method: 'RunJob', code: 14, times: 1 })
  t.teardown(() => emulator.clearFaults())
  const res = await post(s, flowRunId)
  t.equal(res.json().state, 'launched')
  await post(s, flowRunId)
  const lines = logLines.map(line => JSON.parse(line) as Record<string, unknown>)
  t.ok(lines.length > 5, 'the dispatch was logged')
  t.ok(lines.every(l => typeof l.severity === 'string' && typeof l.message === 'string'), 'every line has severity and message')
  const dispatchLines = lines.filter(l => l.dispatch_id !== undefined || /dispatch|launch|Pending/i.test(String(l.message)))
  t.ok(dispatchLines.length >= 3)
  for (const line of dispatchLines) {
    t.equal(line.flow_run_id, flowRunId, `flow_run_id on "${String(line.message)}"`)
    t.equal(line.dispatch_id, res.json().dispatch_id, `dispatch_id on "${String(line.message)}"`)
  }
  const all = logLines.join('\n')
  for (const secret of [peers.authString, WEBHOOK_SECRET, ADMIN_TOKEN, 'PRIVATE KEY']) {
    t.notOk(all.includes(secret), 'no secret in the logs')
  }
})

t.test('Prefect reads per dispatch: the pool and flow from a snapshot, the credentials block once per render', async t => {
  const s = await stage(t)
  const runs = 3
  for (let i = 0; i < runs; i++) t.equal((await post(s, await s.flowRun())).json().state, 'launched')
  const metrics = (await s.app.inject({ method: 'GET', url: '/metrics', headers: adminHeaders() })).body
  const calls = (route: string): number => {
    const line = metrics.split('\n').find(l => l.startsWith(`pushpool_prefect_calls_total{route="${route}",status="200"}`))
    return line === undefined ? 0 : Number(line.split(' ').at(-1))
  }
  t.equal(calls('GET /block_documents/{id}'), runs, 'the block a variable default and the job configuration both name is read once')
  t.equal(calls('GET /work_pools/{name}'), 1, 'the gate and the render share one pool snapshot')
  t.equal(calls('GET /flows/{id}'), 1)
  t.equal(calls('GET /deployments/{id}'), runs, 'the deployment is read afresh for each run, as the worker does')
})

t.test('a dispatch logs one line for its request, answered, and none on receipt', async t => {
  const logLines: string[] = []
  const s = await stage(t, { logLines })
  const res = await post(s, await s.flowRun())
  t.equal(res.json().state, 'launched')
  const lines = logLines.map(line => JSON.parse(line) as { message: string, req?: { method: string, url: string }, res?: { statusCode: number }, responseTime?: number })
  const requests = lines.filter(l => l.message === 'request completed')
  t.equal(requests.length, 1)
  t.same(requests[0].req, { method: 'POST', url: '/v1/webhooks/prefect' })
  t.equal(requests[0].res?.statusCode, 202)
  t.type(requests[0].responseTime, 'number')
  t.notOk(lines.some(l => l.message === 'incoming request'))
  t.ok(lines.some(l => l.message === 'execution launched'))
})
