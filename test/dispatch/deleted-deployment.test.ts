// A run whose deployment was deleted is cancelled, as Prefect's worker cancels it ("Deployment …
// no longer exists, cancelled run."), rather than left stuck: Prefect refuses Pending for it, and
// a retry that already holds Pending has nothing to render.
import t from 'tap'
import { scene, executionsOf } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

t.test('a run whose deployment was deleted while it ran, then set to AwaitingRetry: Cancelled with the worker\'s message, nothing launched', async t => {
  const s = await scene(t, prefect, peers, emulator)
  const flowRunId = await s.flowRun()
  // Deleting a deployment deletes its Scheduled-type runs; a run that was running survives it, and a
  // retry then puts it back in a Scheduled-type state.
  await prefect.setState(flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  await prefect.request('DELETE', `/deployments/${s.deploymentId}`)
  await prefect.setState(flowRunId, { type: 'SCHEDULED', name: 'AwaitingRetry' }, true)
  const reply = await s.webhook(flowRunId, 'prefect.flow-run.AwaitingRetry')
  t.equal(reply.statusCode, 202)
  t.equal(reply.json().state, 'cancelled')
  const run = await prefect.readFlowRun(flowRunId)
  t.equal(run.state?.type, 'CANCELLED')
  t.equal(run.state?.message, `Deployment ${s.deploymentId} no longer exists, cancelled run.`)
  t.equal(executionsOf(emulator, flowRunId).length, 0)
  t.match((await s.detail(reply.json().dispatch_id)).events.at(-1).detail, /no longer exists, cancelled run/)
})

t.test('a retry whose deployment went away after Pending was accepted is cancelled too, not crashed', async t => {
  const s = await scene(t, prefect, peers, emulator)
  emulator.addFault({ method: 'RunJob', code: 14, times: 3 })
  t.teardown(() => emulator.clearFaults())
  const flowRunId = await s.flowRun()
  const first = await s.webhook(flowRunId)
  t.equal(first.json().state, 'retrying', 'Pending accepted, the launch left to retry')
  emulator.clearFaults()
  await prefect.request('DELETE', `/deployments/${s.deploymentId}`)
  const redrive = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${first.json().dispatch_id}/redrive`, headers: { authorization: 'Bearer test-admin-token-0123456789abcd' } })
  t.equal(redrive.json().dispatch.state, 'cancelled')
  const run = await prefect.readFlowRun(flowRunId)
  t.equal(run.state?.type, 'CANCELLED')
  t.match(run.state?.message, /no longer exists, cancelled run/)
})
