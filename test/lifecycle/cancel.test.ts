// Cancellation without a worker: a run that never started, a started run that does not stop by
// itself within the grace period, a run with no execution, and the admin route.
import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { adminHeaders } from '../helper.ts'
import { scene, executionsOf, type Scene, type SceneOptions } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const stage = (t: Test, options?: SceneOptions): Promise<Scene> => scene(t, prefect, peers, emulator, options)

async function launched (t: Test, s: Scene): Promise<{ flowRunId: string, dispatchId: string, execution: string }> {
  const flowRunId = await s.flowRun()
  const res = await s.webhook(flowRunId)
  t.equal(res.json().state, 'launched')
  return { flowRunId, dispatchId: res.json().dispatch_id, execution: (await prefect.readFlowRun(flowRunId)).infrastructure_pid ?? '' }
}

t.test('Cancelling before the run started: the execution is cancelled, then the run is Cancelled', async t => {
  const s = await stage(t)
  const run = await launched(t, s)
  await prefect.setState(run.flowRunId, { type: 'CANCELLING', name: 'Cancelling' }, true)
  const res = await s.webhook(run.flowRunId, 'prefect.flow-run.Cancelling')
  t.equal(res.statusCode, 202)
  t.equal(res.json().state, 'cancelled')
  t.equal(emulator.execution(run.execution)?.cancelledCount, 1, 'Cloud Run execution cancelled')
  t.equal((await prefect.readFlowRun(run.flowRunId)).state?.type, 'CANCELLED')
})

t.test('Cancelling a started run: the engine gets a grace period, then reconcile cancels the execution', async t => {
  // A grace long enough that the first pass (two reads of the run and one of the execution) judges
  // within it even on a loaded machine; the second pass waits for the grace's end as recorded.
  const s = await stage(t, { env: { PUSHPOOL_CANCEL_GRACE_SECONDS: '10' } })
  const run = await launched(t, s)
  await prefect.setState(run.flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  await prefect.setState(run.flowRunId, { type: 'CANCELLING', name: 'Cancelling' }, true)
  const res = await s.webhook(run.flowRunId, 'prefect.flow-run.Cancelling')
  t.equal(res.json().state, 'launched', 'left to the engine for now')
  t.equal(emulator.execution(run.execution)?.cancelledCount, 0)
  t.equal((await s.reconcile()).cancelled, 0, 'within the grace period nothing is forced')
  const graceEnds = Date.parse((await s.detail(run.dispatchId)).dispatch.due_at)
  t.ok(Number.isFinite(graceEnds), 'the grace period\'s end is recorded as the dispatch\'s due time')
  await sleep(Math.max(0, graceEnds - Date.now()) + 200)
  // On a loaded machine a pass may fail a step (a Prefect read past its deadline) or run out of
  // budget; it says so, and the next pass retries. A pass that neither cancels nor says why fails.
  let report = await s.reconcile()
  for (let pass = 2; report.cancelled === 0 && pass <= 3; pass++) {
    t.ok(Number(report.errors) > 0 || report.truncated === true, `a pass that cancelled nothing says why: ${JSON.stringify(report)}`)
    report = await s.reconcile()
  }
  t.equal(report.cancelled, 1, JSON.stringify(report))
  t.equal(emulator.execution(run.execution)?.cancelledCount, 1, 'execution cancelled after the grace period')
  t.equal((await prefect.readFlowRun(run.flowRunId)).state?.type, 'CANCELLED')
  t.equal((await s.detail(run.dispatchId)).dispatch.state, 'cancelled')
})

t.test('a started run that cancels itself in time is left alone', async t => {
  const s = await stage(t, { env: { PUSHPOOL_CANCEL_GRACE_SECONDS: '1' } })
  const run = await launched(t, s)
  await prefect.setState(run.flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  await prefect.setState(run.flowRunId, { type: 'CANCELLING', name: 'Cancelling' }, true)
  await s.webhook(run.flowRunId, 'prefect.flow-run.Cancelling')
  // The engine reports Cancelled and its container exits.
  await prefect.setState(run.flowRunId, { type: 'CANCELLED', name: 'Cancelled' }, true)
  emulator.finishExecution(run.execution, { exitCode: 0 })
  await sleep(1200)
  const report = await s.reconcile()
  t.equal(report.cancelled, 0)
  t.equal(emulator.execution(run.execution)?.cancelledCount, 0)
  t.equal((await s.detail(run.dispatchId)).dispatch.state, 'cancelled')
})

t.test('Cancelling with no execution: the run is simply Cancelled', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  await prefect.setState(flowRunId, { type: 'PENDING', name: 'Pending' }, true)
  await prefect.setState(flowRunId, { type: 'CANCELLING', name: 'Cancelling' }, true)
  const res = await s.webhook(flowRunId, 'prefect.flow-run.Cancelling')
  t.equal(res.statusCode, 200)
  t.equal(res.json().status, 'ignored')
  t.equal((await prefect.readFlowRun(flowRunId)).state?.type, 'CANCELLED')
  t.equal(executionsOf(emulator, flowRunId).length, 0)
})

t.test('admin cancel: Prefect is asked for Cancelling, then the same path follows', async t => {
  const s = await stage(t, { env: { PUSHPOOL_PREFETCH_SECONDS: '1' } })
  const run = await launched(t, s)
  const res = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${run.dispatchId}/cancel`, headers: adminHeaders() })
  t.equal(res.statusCode, 200)
  t.equal(res.json().dispatch.state, 'cancelled')
  t.equal(emulator.execution(run.execution)?.cancelledCount, 1)
  t.equal((await prefect.readFlowRun(run.flowRunId)).state?.type, 'CANCELLED')
  const again = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${run.dispatchId}/cancel`, headers: adminHeaders() })
  t.equal(again.statusCode, 409)
  t.equal(again.json().code, 'DISPATCH_NOT_CANCELLABLE')

  // A deferred dispatch: cancelled before it ever launches, and reconcile never launches it.
  const later = await s.flowRun({ type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: new Date(Date.now() + 60_000).toISOString() } })
  const deferred = await s.webhook(later)
  t.equal(deferred.json().state, 'deferred')
  const cancel = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${deferred.json().dispatch_id}/cancel`, headers: adminHeaders() })
  t.equal(cancel.json().dispatch.state, 'cancelled')
  await s.reconcile()
  t.equal(executionsOf(emulator, later).length, 0)
  t.equal((await prefect.readFlowRun(later)).state?.type, 'CANCELLED')
})

t.test('concurrent cancels of one run: one forced Cancelled state and one CancelExecution; the others answer as duplicates', async t => {
  const s = await stage(t)
  const run = await launched(t, s)
  emulator.resetCalls()
  const replies = await Promise.all(Array.from({ length: 8 }, () =>
    s.app.inject({ method: 'POST', url: `/v1/dispatches/${run.dispatchId}/cancel`, headers: adminHeaders() })))
  t.same(replies.map(r => r.statusCode), replies.map(() => 200), 'each concurrent request is answered 200')
  t.same(new Set(replies.map(r => r.json().dispatch.id)), new Set([run.dispatchId]))
  t.equal(emulator.calls().CancelExecution, 1, 'one CancelExecution')
  const states = await prefect.readStates(run.flowRunId)
  t.equal(states.filter(state => state.type === 'CANCELLED').length, 1, 'one Cancelled state in Prefect')
  t.equal(states.filter(state => state.type === 'CANCELLING').length, 1, 'one Cancelling state in Prefect')
  const detail = await s.detail(run.dispatchId)
  t.equal(detail.dispatch.state, 'cancelled')
  t.match(detail.dispatch.cancel_requested_at, /Z$/)
  t.equal(detail.events.filter((e: { type: string }) => e.type === 'cancel_requested').length, 1, 'the request is recorded once')

  // The run's Cancelling webhook, arriving after the admin cancel, is a duplicate too.
  const webhook = await s.webhook(run.flowRunId, 'prefect.flow-run.Cancelling')
  t.ok(['duplicate', 'ignored'].includes(webhook.json().status), `the run is Cancelled already: nothing to do (${webhook.body})`)
  t.equal(emulator.calls().CancelExecution, 1)
})

t.test('a run cancelled while its drive is claiming is never launched', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  // Prefect answers the Pending proposal slowly, so the cancellation lands while the drive is in `claimed`.
  const created = await s.app.store.createDispatch({
    key: `${flowRunId}:${(await prefect.readFlowRun(flowRunId)).state!.id}`, flowRunId, flowRunName: null, pool: s.pool,
    deploymentId: s.deploymentId, state: 'received', dueAt: null, receivedAt: new Date().toISOString(), detail: 'test'
  })
  const held = await s.app.store.acquire(created.dispatch.id, ['received'], 'a-drive', 60_000)
  await s.app.store.transition(created.dispatch.id, 'claim', {}, { detail: 'claimed by a drive' }, { lease: held!.lease })
  const cancel = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${created.dispatch.id}/cancel`, headers: adminHeaders() })
  t.equal(cancel.statusCode, 200)
  t.equal(cancel.json().dispatch.state, 'cancelled', 'a claimed dispatch has launched nothing: it is cancelled at once')
  t.equal(await s.app.store.transition(created.dispatch.id, 'launch', {}, { detail: 'the drive goes on' }, { lease: held!.lease }), null,
    'the drive\'s next step finds the dispatch moved, and stops')
  await s.reconcile()
  t.equal(executionsOf(emulator, flowRunId).length, 0)
  t.equal((await prefect.readFlowRun(flowRunId)).state?.type, 'CANCELLED')
})
