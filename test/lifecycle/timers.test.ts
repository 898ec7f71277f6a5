// Runs start on time with no reconcile at their time: reconcile's look-ahead (or a webhook for a
// run not yet due) arms a timer per run; the timer re-reads the run and drives it only if it is
// still the state dispatched. Process mode (the embedded default) here; Cloud Tasks mode in
// test/lifecycle/cloud-tasks.test.ts. No automation is set up and reconcile is called once only,
// so nothing but a timer can start these runs.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { build, adminHeaders } from '../helper.ts'
import { scene, executionsOf } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { recordingProxy, refuseFirst } from '../reliability/raw-http.ts'
import type { FlowRun } from '../../src/prefect/types.ts'
import type { FastifyInstance } from 'fastify'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const PREFETCH = 2
const env = { PUSHPOOL_PREFETCH_SECONDS: String(PREFETCH) }
const inSeconds = (s: number): string => new Date(Date.now() + s * 1000).toISOString()
const scheduled = (at: string) => ({ type: 'SCHEDULED' as const, name: 'Scheduled', state_details: { scheduled_time: at } })

/**
 * Waits until the run's dispatch is launched (a drive goes on after Pending), or `ms` pass; its
 * state then, with the events of its way there should it not be launched (what held it).
 */
async function dispatchState (app: FastifyInstance, flowRunId: string, ms: number): Promise<string> {
  let dispatch: { id: string, state: string } | undefined
  for (const giveUp = Date.now() + ms; dispatch?.state !== 'launched' && Date.now() < giveUp; await sleep(200)) {
    dispatch = (await app.inject({ method: 'GET', url: `/v1/dispatches?flow_run_id=${flowRunId}`, headers: adminHeaders() })).json().items[0]
  }
  if (dispatch === undefined || dispatch.state === 'launched') return dispatch?.state ?? 'no dispatch'
  const detail = (await app.inject({ method: 'GET', url: `/v1/dispatches/${dispatch.id}`, headers: adminHeaders() })).json()
  return `${dispatch.state}, after ${JSON.stringify(detail.events.map((e: { detail: string }) => e.detail))}`
}

/** Waits (without reconciling) until the run leaves its Scheduled state, or `ms` pass. */
async function leftScheduled (flowRunId: string, ms: number): Promise<FlowRun> {
  return await prefect.waitForFlowRunState(flowRunId, run => run.state?.type !== 'SCHEDULED', ms)
}

t.test('a deployment schedule\'s runs start at their time, fired by the timers one reconcile pass armed', async t => {
  const s = await scene(t, prefect, peers, emulator, { env })
  // Prefect's scheduler inserts the runs itself, well ahead, with no Scheduled event.
  const anchor = new Date(Math.ceil(Date.now() / 1000) * 1000 + 20_000).toISOString()
  const [schedule] = await prefect.createDeploymentSchedules(s.deploymentId, [{ schedule: { interval: 15, anchor_date: anchor } }])
  t.teardown(() => prefect.deleteDeploymentSchedule(s.deploymentId, schedule.id))
  let runs: FlowRun[] = []
  for (const giveUp = Date.now() + 60_000; runs.length < 2 && Date.now() < giveUp; await sleep(500)) {
    runs = (await prefect.readDeploymentFlowRuns(s.deploymentId)).filter(run => run.state?.type === 'SCHEDULED')
      .sort((a, b) => Date.parse(a.next_scheduled_start_time ?? '') - Date.parse(b.next_scheduled_start_time ?? ''))
  }
  t.ok(runs.length >= 2, `the scheduler made runs (${runs.length})`)
  const report = await s.reconcile()
  t.ok(Number(report.armed) >= 2, `one pass armed their timers: ${JSON.stringify(report)}`)

  for (const run of runs.slice(0, 2)) {
    const due = Date.parse(run.next_scheduled_start_time ?? '')
    const started = await leftScheduled(run.id, 90_000)
    t.equal(started.state?.type, 'PENDING', `${run.name}: started by its timer, with no reconcile since`)
    const pendingAt = Date.parse(started.state?.timestamp ?? '')
    const delay = pendingAt - due
    t.comment(`${run.name}: Pending ${delay} ms from its scheduled time (the timer fires ${PREFETCH} s early)`)
    t.ok(delay >= -PREFETCH * 1000 - 1000, 'not before the prefetch window')
    // A drive that met a Prefect too slow to answer after Pending retries the launch after
    // PUSHPOOL_RETRY_DELAY_SECONDS (30 s): room for a few.
    t.equal(await dispatchState(s.app, run.id, 120_000), 'launched')
    t.equal(executionsOf(emulator, run.id).length, 1, 'one execution')
  }
})

t.test('a timer whose drive finds Prefect unreachable fires again after a backoff, with no reconcile', async t => {
  const proxy = await recordingProxy(peers.apiUrl)
  t.teardown(() => proxy.close())
  const s = await scene(t, prefect, peers, emulator, { env: { ...env, PREFECT_API_URL: proxy.url } })
  const id = await s.flowRun(scheduled(inSeconds(PREFETCH + 3)))
  t.equal((await s.webhook(id)).json().state, 'deferred')
  // From now on the run's reads fail (503, as a Prefect on SQLite answers while its database is
  // locked) as many times as one call of pushpool's client tries: the timer's drive cannot read
  // the run, and fails. Before, its timer was then gone until the next reconcile pass.
  const READ = `GET /flow_runs/${id}`
  const TRIES = 4
  const refused = refuseFirst(proxy, READ, TRIES)
  const started = await leftScheduled(id, 60_000)
  t.equal(refused(), TRIES, 'the timer\'s first drive met the outage')
  t.equal(started.state?.type, 'PENDING', 'the timer fired again and started the run, with no reconcile')
  t.ok(proxy.requests.filter(r => r === READ).length > TRIES, 'its run was read again after the outage')
  t.equal(await dispatchState(s.app, id, 60_000), 'launched')
  t.equal(executionsOf(emulator, id).length, 1, 'one execution')
})

t.test('a run rescheduled, cancelled or deleted before its timer fires is not launched at the old time', async t => {
  const s = await scene(t, prefect, peers, emulator, { env })
  // Far enough ahead that the runs are changed (several Prefect calls) before their timers fire,
  // even on a loaded machine.
  const at = inSeconds(30)
  const rescheduled = await s.flowRun(scheduled(at))
  const cancelled = await s.flowRun(scheduled(at))
  const deleted = await s.flowRun(scheduled(at))
  const replies = await Promise.all([rescheduled, cancelled, deleted].map(async id => (await s.webhook(id)).json()))
  t.same(replies.map(r => r.state), ['deferred', 'deferred', 'deferred'], 'each waits for its time, its timer armed')
  const dueAts = (await Promise.all(replies.map(r => s.detail(r.dispatch_id)))).map(d => Date.parse(d.dispatch.due_at))
  t.ok(dueAts.every(Number.isFinite), 'each dispatch records the old time it waits for')

  await prefect.setState(rescheduled, scheduled(inSeconds(600)), true)
  await prefect.setState(cancelled, { type: 'CANCELLED', name: 'Cancelled' }, true)
  await prefect.request('DELETE', `/flow_runs/${deleted}`)
  t.comment(`the runs changed ${Math.min(...dueAts) - PREFETCH * 1000 - Date.now()} ms before their timers were due`)
  // Past the old time: each timer fires PREFETCH s before its dispatch's due time.
  await sleep(Math.max(0, Math.max(...dueAts) - PREFETCH * 1000 - Date.now()) + 2000)
  // A firing re-reads its run before it settles the dispatch: wait for each to leave `deferred`.
  let details: any[] = []
  for (const giveUp = Date.now() + 30_000; ; await sleep(250)) {
    details = await Promise.all(replies.map(r => s.detail(r.dispatch_id)))
    if (details.every(d => d.dispatch.state !== 'deferred') || Date.now() >= giveUp) break
  }

  for (const id of [rescheduled, cancelled, deleted]) t.equal(executionsOf(emulator, id).length, 0, 'not launched')
  t.same(details.map(d => d.dispatch.state), ['skipped', 'skipped', 'skipped'], 'each stale timer found its dispatch moved on')
  t.match(details[0].events.at(-1).detail, /the run moved on/)
  t.match(details[2].events.at(-1).detail, /no longer exists/)
  t.equal((await prefect.readFlowRun(rescheduled)).state?.type, 'SCHEDULED', 'the rescheduled run waits for its new time')
})

t.test('a timer that fires before its dispatch\'s time (stale: the dispatch was put back to wait longer) drives nothing', async t => {
  const s = await scene(t, prefect, peers, emulator, { env })
  const id = await s.flowRun(scheduled(inSeconds(60)))
  const reply = (await s.webhook(id)).json()
  t.equal(reply.state, 'deferred')
  // What an earlier timer of the dispatch delivers, 58 s before its current one is due.
  const fired = await s.app.inject({
    method: 'POST', url: '/v1/timers/fire', headers: { ...adminHeaders(), 'content-type': 'application/json' }, payload: JSON.stringify({ dispatch_id: reply.dispatch_id })
  })
  t.same(fired.json(), { status: 'moved-on', dispatch_id: reply.dispatch_id, state: 'deferred' }, 'answered as stale, so Cloud Tasks does not retry it')
  await sleep(1000)
  t.equal((await prefect.readFlowRun(id)).state?.type, 'SCHEDULED', 'not proposed Pending')
  t.equal(executionsOf(emulator, id).length, 0, 'not launched')
  t.equal((await s.detail(reply.dispatch_id)).dispatch.state, 'deferred', 'it still waits for its own timer')
})

t.test('a restarted process arms its timers again from the ledger', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-timers-'))
  const storeEnv = { ...env, PUSHPOOL_STORE_URL: `sqlite:${join(dir, 'pushpool.db')}` }
  const s = await scene(t, prefect, peers, emulator, { env: storeEnv })
  const id = await s.flowRun(scheduled(inSeconds(12)))
  t.equal((await s.webhook(id)).json().state, 'deferred')
  await s.app.close() // the process stops; its in-process timer goes with it

  const restarted = await build(t, { env: { ...storeEnv, PREFECT_API_URL: peers.apiUrl, PREFECT_API_AUTH_STRING: peers.authString, PUSHPOOL_POOLS: s.pool, PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint } })
  const started = await leftScheduled(id, 60_000)
  t.equal(started.state?.type, 'PENDING', 'the new process fired it, with no reconcile and no webhook')
  t.equal(await dispatchState(restarted, id, 60_000), 'launched', 'and launched it')
  t.equal(executionsOf(emulator, id).length, 1)
})
