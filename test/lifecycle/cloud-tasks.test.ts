// Timers on Cloud Tasks (PUSHPOOL_TIMERS=cloud-tasks), through the real @google-cloud/tasks client
// and the emulator's Cloud Tasks: a run waiting for its time becomes one named task, delivered at
// the time to POST /v1/timers/fire with an OIDC token pushpool verifies, and nothing else starts it
// (no reconcile after arming, no automation). Two instances arming the same run make one task and
// one execution; a token for the wrong account or audience is refused.
import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { v2 } from '@google-cloud/tasks'
import { build, adminHeaders } from '../helper.ts'
import { scene, executionsOf } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator, emulatorClientOptions } from '../../src/emulator/index.ts'
import { findFreePort } from '../../src/devstack/prefect-server.ts'
import { freshDatabase, NO_POSTGRES, postgresTestUrl } from '../store/postgres-database.ts'
import type { FlowRun } from '../../src/prefect/types.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())
const tasks = new v2.CloudTasksClient({ ...emulatorClientOptions(emulator.endpoint), projectId: 'proj-test' })
t.teardown(() => tasks.close())

const LOCATION = 'projects/proj-test/locations/us-central1'
const INVOKER = 'pushpool-invoker@proj-test.iam.gserviceaccount.com'
const PREFETCH = 2
let queues = 0

/** The environment of an instance timed by Cloud Tasks, listening on `port` (the audience and task URL). */
async function cloudTasksEnv (port: number): Promise<Record<string, string>> {
  const queue = `${LOCATION}/queues/pushpool-${++queues}`
  await tasks.createQueue({ parent: LOCATION, queue: { name: queue } }).catch(() => undefined)
  return {
    PUSHPOOL_TIMERS: 'cloud-tasks',
    PUSHPOOL_TASKS_QUEUE: queue,
    PUSHPOOL_TASKS_INVOKER: INVOKER,
    PUSHPOOL_TASKS_ENDPOINT: emulator.endpoint,
    PUSHPOOL_AUDIENCE: `http://127.0.0.1:${port}`,
    PUSHPOOL_GOOGLE_CERTS_URL: emulator.certsUrl,
    PUSHPOOL_PREFETCH_SECONDS: String(PREFETCH)
  }
}

async function listen (app: FastifyInstance, port: number): Promise<void> {
  await app.listen({ port, host: '127.0.0.1' })
}

const inSeconds = (s: number): string => new Date(Date.now() + s * 1000).toISOString()
const scheduled = (at: string) => ({ type: 'SCHEDULED' as const, name: 'Scheduled', state_details: { scheduled_time: at } })

async function waitLaunched (app: FastifyInstance, flowRunId: string, ms: number): Promise<string> {
  let state = ''
  for (const giveUp = Date.now() + ms; state !== 'launched' && Date.now() < giveUp; await sleep(250)) {
    state = (await app.inject({ method: 'GET', url: `/v1/dispatches?flow_run_id=${flowRunId}`, headers: adminHeaders() })).json().items[0]?.state ?? ''
  }
  return state
}

const tasksOf = (queue: string) => emulator.tasks().filter(task => task.name.startsWith(`${queue}/tasks/`))

/**
 * The names of every task the queue has held: those still waiting, and those delivered already (a
 * delivered task leaves the queue). Counted as one set, so a second task armed for the same run
 * counts whether or not either has fired yet.
 */
const taskNamesOf = (queue: string): Set<string> => new Set([
  ...tasksOf(queue).map(task => task.name),
  ...emulator.taskDeliveries().map(delivery => delivery.task).filter(name => name.startsWith(`${queue}/tasks/`))
])

/**
 * How far ahead the runs these tests arm are scheduled: their timers fire PREFETCH seconds before,
 * and what comes before the count (the webhooks, a reconcile pass: several Prefect calls each) must
 * have armed them by then, even on a loaded machine.
 */
const AHEAD_SECONDS = 30

t.test('a run not yet due becomes one Cloud Tasks task, delivered at its time with an OIDC token, which launches it', async t => {
  const port = await findFreePort()
  const env = await cloudTasksEnv(port)
  const s = await scene(t, prefect, peers, emulator, { env })
  await listen(s.app, port)
  const at = inSeconds(AHEAD_SECONDS)
  const flowRunId = await s.flowRun(scheduled(at))
  const first = await s.webhook(flowRunId)
  t.equal(first.json().state, 'deferred')
  await s.webhook(flowRunId) // a second delivery arms the same timer again
  await s.reconcile() // and so does reconcile's look-ahead
  t.comment(`armed again ${Date.parse(at) - PREFETCH * 1000 - Date.now()} ms before the task was due`)
  t.equal(taskNamesOf(env.PUSHPOOL_TASKS_QUEUE).size, 1, 'one task however often it is armed')

  t.equal(await waitLaunched(s.app, flowRunId, AHEAD_SECONDS * 1000 + 60_000), 'launched', 'the task fired and launched the run, with no reconcile since')
  t.equal(executionsOf(emulator, flowRunId).length, 1)
  const delivery = emulator.taskDeliveries().find(d => d.url === `${env.PUSHPOOL_AUDIENCE}/v1/timers/fire` && d.status === 200)
  t.ok(delivery, 'delivered to the timer route and answered 200')
  const run = await prefect.readFlowRun(flowRunId)
  t.comment(`Pending ${Date.parse(run.state?.timestamp ?? '') - Date.parse(scheduled(inSeconds(0)).state_details.scheduled_time)} ms after the test's clock`)
})

t.test('the timer route admits only the invoker\'s token for this audience, or an admin', async t => {
  const port = await findFreePort()
  const env = await cloudTasksEnv(port)
  const app = await build(t, { env: { ...env, PREFECT_API_URL: peers.apiUrl, PREFECT_API_AUTH_STRING: peers.authString } })
  const fire = (authorization: string) => app.inject({
    method: 'POST', url: '/v1/timers/fire', headers: { authorization, 'content-type': 'application/json' },
    payload: JSON.stringify({ dispatch_id: '00000000-0000-4000-8000-000000000000' })
  })
  t.equal((await fire(`Bearer ${emulator.idToken(INVOKER, env.PUSHPOOL_AUDIENCE)}`)).json().status, 'gone', 'the invoker is admitted')
  t.equal((await fire(`Bearer ${emulator.idToken('someone-else@proj-test.iam.gserviceaccount.com', env.PUSHPOOL_AUDIENCE)}`)).json().code, 'ADMIN_FORBIDDEN')
  t.equal((await fire(`Bearer ${emulator.idToken(INVOKER, 'https://elsewhere.example')}`)).json().code, 'ADMIN_UNAUTHORIZED', 'another audience')
  t.equal((await fire('Bearer nope')).statusCode, 401)
  t.equal((await fire(adminHeaders().authorization)).json().status, 'gone', 'an admin may fire one by hand')
  const bad = await app.inject({ method: 'POST', url: '/v1/timers/fire', headers: { ...adminHeaders(), 'content-type': 'application/json' }, payload: '{"dispatch_id":"x"}' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'BAD_REQUEST')
})

t.test('a deployment schedule\'s runs start at their time on Cloud Tasks, armed by one reconcile pass', async t => {
  const port = await findFreePort()
  const env = await cloudTasksEnv(port)
  const s = await scene(t, prefect, peers, emulator, { env })
  await listen(s.app, port)
  // Far enough ahead that a slow scheduler and pass on a loaded machine still leave runs to arm.
  const anchor = new Date(Math.ceil(Date.now() / 1000) * 1000 + 45_000).toISOString()
  const [schedule] = await prefect.createDeploymentSchedules(s.deploymentId, [{ schedule: { interval: 20, anchor_date: anchor } }])
  t.teardown(() => prefect.deleteDeploymentSchedule(s.deploymentId, schedule.id))
  let runs: FlowRun[] = []
  for (const giveUp = Date.now() + 60_000; runs.length < 1 && Date.now() < giveUp; await sleep(500)) {
    runs = (await prefect.readDeploymentFlowRuns(s.deploymentId)).filter(run => run.state?.type === 'SCHEDULED')
  }
  t.ok(runs.length >= 1, 'the scheduler made runs')
  // A pass that met a Prefect read past its deadline is followed by the next, as Cloud Scheduler's
  // next call would be; the look-ahead of a pass that read Prefect whole arms the runs.
  let armed = 0
  let failures: unknown[] = []
  for (let pass = 0; pass < 5; pass++) {
    const report = await s.reconcile()
    armed += Number(report.armed)
    failures = report.failures as unknown[]
    if (failures.length === 0) break
  }
  t.ok(armed >= 1, `armed ${armed}${failures.length === 0 ? '' : ` (the last pass failed: ${JSON.stringify(failures)})`}`)
  t.ok(taskNamesOf(env.PUSHPOOL_TASKS_QUEUE).size >= 1, 'as Cloud Tasks tasks')
  // The first run still to come when armed: its timer, not a pass, launches it.
  const due = (run: FlowRun): number => Date.parse(run.next_scheduled_start_time ?? '')
  const first = runs.filter(run => due(run) > Date.now() + PREFETCH * 1000).sort((a, b) => due(a) - due(b))[0] ?? runs[0]
  t.equal(await waitLaunched(s.app, first.id, Math.max(0, due(first) - Date.now()) + 60_000), 'launched')
  const started = await prefect.readFlowRun(first.id)
  t.comment(`${first.name}: Pending ${Date.parse(started.state?.timestamp ?? '') - Date.parse(first.next_scheduled_start_time ?? '')} ms from its scheduled time`)
})

const postgres = postgresTestUrl()
if (postgres === undefined) {
  t.comment(NO_POSTGRES)
} else {
  t.test('two instances arming the same run: one task, one execution', async t => {
    const [portA, portB] = [await findFreePort(), await findFreePort()]
    const env = await cloudTasksEnv(portA)
    const shared = { ...env, PUSHPOOL_STORE_URL: await freshDatabase(t as Test, postgres) }
    const a = await scene(t, prefect, peers, emulator, { env: shared })
    const b = await build(t, { env: { ...shared, PREFECT_API_URL: peers.apiUrl, PREFECT_API_AUTH_STRING: peers.authString, PUSHPOOL_POOLS: a.pool, PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint } })
    await listen(a.app, portA)
    await listen(b, portB)
    const at = inSeconds(AHEAD_SECONDS)
    const flowRunId = await a.flowRun(scheduled(at))
    await Promise.all([a.webhook(flowRunId), a.reconcile(), b.inject({ method: 'POST', url: '/v1/reconcile', headers: adminHeaders() })])
    t.comment(`armed ${Date.parse(at) - PREFETCH * 1000 - Date.now()} ms before the task was due`)
    t.equal(taskNamesOf(env.PUSHPOOL_TASKS_QUEUE).size, 1, 'one task')
    t.equal(await waitLaunched(a.app, flowRunId, AHEAD_SECONDS * 1000 + 60_000), 'launched')
    await sleep(1000)
    t.equal(executionsOf(emulator, flowRunId).length, 1, 'one execution')
  })
}
