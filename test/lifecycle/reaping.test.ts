// No execution outlives its run. Prefect ends runs on its own: its server force-cancels a run
// stuck in Cancelling after `cancelling_timeout_seconds` (queuing a teardown only workers read), a
// zombie detector or an operator marks a run Crashed, an engine reports Failed and its container
// hangs. In each case reconcile cancels the execution that still runs. A private Prefect server,
// with the Cancelling timeout shortened, so its own service does the cancelling here.
import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { adminHeaders } from '../helper.ts'
import { scene, type Scene } from '../harness/scene.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { newTestAuthString, testVenv } from '../harness/test-env.ts'
import { startPrefectServer } from '../../src/devstack/prefect-server.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const authString = newTestAuthString()
const server = await startPrefectServer({
  venv: await testVenv(),
  authString,
  env: {
    PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_CANCELLING_TIMEOUT_SECONDS: '2',
    PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS: '1'
  }
})
t.teardown(() => server.stop())
const peers = { apiUrl: server.apiUrl, authString }
const prefect = new PrefectFixtures(peers.apiUrl, authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

async function launchedAndStarted (t: Test, s: Scene): Promise<{ flowRunId: string, dispatchId: string, execution: string }> {
  const flowRunId = await s.flowRun()
  const res = await s.webhook(flowRunId)
  t.equal(res.json().state, 'launched')
  // The engine in the container has started the run; the container then hangs.
  await prefect.setState(flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  return { flowRunId, dispatchId: res.json().dispatch_id, execution: (await prefect.readFlowRun(flowRunId)).infrastructure_pid ?? '' }
}

async function reapedCount (s: Scene): Promise<number> {
  const text = (await s.app.inject({ method: 'GET', url: '/metrics', headers: adminHeaders() })).body
  return Number(new RegExp(`pushpool_reaped_executions_total\\{pool="${s.pool}"\\} (\\d+)`).exec(text)?.[1] ?? 0)
}

t.test('Prefect\'s own Cancelling timeout cancels the run; reconcile cancels the execution that still runs', async t => {
  // A long grace period: pushpool would not cancel the execution itself for a minute.
  const s = await scene(t, prefect, peers, emulator, { env: { PUSHPOOL_CANCEL_GRACE_SECONDS: '600' } })
  const run = await launchedAndStarted(t, s)
  await prefect.setState(run.flowRunId, { type: 'CANCELLING', name: 'Cancelling' })
  t.equal((await s.webhook(run.flowRunId, 'prefect.flow-run.Cancelling')).json().state, 'launched', 'left to the engine, which hangs')
  // Prefect's cancellation cleanup service forces Cancelled once the timeout has passed.
  let state = (await prefect.readFlowRun(run.flowRunId)).state
  for (const giveUp = Date.now() + 120_000; state?.type !== 'CANCELLED' && Date.now() < giveUp;) {
    await sleep(500)
    state = (await prefect.readFlowRun(run.flowRunId)).state
  }
  t.equal(state?.type, 'CANCELLED', `Prefect's server cancelled the run: ${state?.message ?? ''}`)
  t.equal(emulator.execution(run.execution)?.completionTime ?? null, null, 'its execution still runs')

  const report = await s.reconcile()
  t.equal(report.reaped, 1)
  t.equal(emulator.execution(run.execution)?.cancelledCount, 1, 'the execution was cancelled')
  const detail = await s.detail(run.dispatchId)
  t.equal(detail.dispatch.state, 'cancelled')
  t.match(detail.events.find((e: { type: string }) => e.type === 'execution_reaped')?.detail, /Cancelled in Prefect but its execution still ran/)
  t.equal(await reapedCount(s), 1, 'counted in /metrics')
  t.equal((await s.reconcile()).reaped, 0, 'once')
})

t.test('a run forced Crashed (a zombie detector, an operator) or Failed by its engine has its execution cancelled', async t => {
  const s = await scene(t, prefect, peers, emulator)
  const crashed = await launchedAndStarted(t, s)
  const failed = await launchedAndStarted(t, s)
  const completed = await launchedAndStarted(t, s)
  await prefect.setState(crashed.flowRunId, { type: 'CRASHED', name: 'Crashed', message: 'no heartbeat for 90 s' }, true)
  await prefect.setState(failed.flowRunId, { type: 'FAILED', name: 'Failed' }, true)
  await prefect.setState(completed.flowRunId, { type: 'COMPLETED', name: 'Completed' }, true)
  emulator.resetCalls()
  const report = await s.reconcile()
  t.equal(report.reaped, 2)
  t.equal(emulator.execution(crashed.execution)?.cancelledCount, 1)
  t.equal(emulator.execution(failed.execution)?.cancelledCount, 1)
  t.equal(emulator.execution(completed.execution)?.cancelledCount, 0, 'a Completed run\'s execution is left to exit')
  t.equal(emulator.calls().GetExecution, 2, 'a Completed run\'s execution is not even read')
  t.equal((await s.detail(crashed.dispatchId)).dispatch.state, 'crashed')
  t.equal((await s.detail(failed.dispatchId)).dispatch.state, 'failed')
  t.equal((await s.detail(completed.dispatchId)).dispatch.state, 'succeeded')
  t.equal((await prefect.readFlowRun(crashed.flowRunId)).state?.message, 'no heartbeat for 90 s', 'Prefect\'s state is left as it was')
  emulator.finishExecution(completed.execution, { exitCode: 0 })
})
