// Ownership of a drive: a dispatch whose drive died holding its lease is left alone while the lease
// lives, and taken over by the first reconcile pass after it runs out; the owner that lost the lease
// can change nothing. (test/production/two-instances.test.ts does the same across processes, with a
// real SIGKILL.)
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { scene, executionsOf, settledDispatch } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { adminHeaders } from '../helper.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { Ownership, LeaseLost } from '../../src/dispatch/ownership.ts'
import { pendingMessage } from '../../src/dispatch/decisions.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const DEADLINES = { prefectCallMs: 1000, cloudRunCallMs: 1000, createJobMs: 1000 }

t.test('a launch cut short with its lease live is left alone; once the lease runs out, one pass takes it over and launches once', async t => {
  const s = await scene(t, prefect, peers, emulator)
  const flowRunId = await s.flowRun()
  const state = (await prefect.readFlowRun(flowRunId)).state!
  // What a process leaves when it dies in the middle of a launch: `launching`, Pending accepted, and
  // a lease that runs a little longer.
  const { dispatch } = await s.app.store.createDispatch({
    key: `${flowRunId}:${state.id}`, flowRunId, flowRunName: null, pool: s.pool, deploymentId: s.deploymentId,
    state: 'received', dueAt: null, receivedAt: new Date().toISOString(), detail: 'webhook (test: its process then died)'
  })
  const dead = await Ownership.acquire(s.app.store, dispatch.id, ['received'], 'instance-that-died', DEADLINES, 0)
  t.ok(dead, 'the dead instance held it')
  await dead!.own.transition('claim', {}, { detail: 'proposing Pending to Prefect' })
  await prefect.setState(flowRunId, { type: 'PENDING', name: 'Pending', message: pendingMessage(dispatch) })
  await dead!.own.hold(1000)
  await dead!.own.transition('launch', {}, { detail: 'launching (test: the process dies now)' })

  const early = await s.reconcile()
  t.equal(early.driven, 0, 'not while the lease lives')
  t.equal((await s.app.store.getDispatch(dispatch.id))?.state, 'launching')

  await sleep(6500) // the lease (1 s step + the 5 s margin) runs out
  emulator.resetCalls()
  const report = await s.reconcile()
  let after = await s.detail(dispatch.id)
  const takeovers = (): Array<{ type: string, detail: string }> => after.events.filter((e: { type: string }) => e.type === 'lease_taken_over')
  t.equal(takeovers().length, 1, `the first pass after it ran out took it over (driven ${String(report.driven)})`)
  // On a loaded machine the drive that took it over may meet a Prefect read past its deadline and
  // wait to retry (`retrying`): drive it on until it settles, as the next passes would.
  await settledDispatch(s.app, dispatch.id)
  after = await s.detail(dispatch.id)
  t.equal(after.dispatch.state, 'launched', `launched: ${after.events.map((e: { type: string, detail: string }) => `${e.type} ${e.detail}`).join(' | ')}`)
  t.equal(executionsOf(emulator, flowRunId).length, 1, 'one execution')
  t.ok((emulator.calls().ListExecutions ?? 0) + (emulator.calls().GetJob ?? 0) >= 1, 'it looked for the dead drive\'s execution first')
  t.match(takeovers()[0]?.detail, /instance-that-died/, 'the takeover names the owner it took over from')

  // The owner that died, come back: it can change nothing.
  await t.rejects(dead!.own.hold(1000), LeaseLost)
  t.equal(await dead!.own.transition('retry', {}, { detail: 'stale' }), null)
  t.equal((await s.app.store.getDispatch(dispatch.id))?.state, 'launched')
})

t.test('redrive of a dispatch another drive owns answers DISPATCH_BUSY with its lease', async t => {
  const s = await scene(t, prefect, peers, emulator)
  const flowRunId = await s.flowRun({ type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: new Date(Date.now() + 600_000).toISOString() } })
  const deferred = (await s.webhook(flowRunId)).json()
  t.equal(deferred.state, 'deferred')
  const held = await s.app.store.acquire(deferred.dispatch_id, ['deferred'], 'another-instance', 60_000)
  t.ok(held)
  const res = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${deferred.dispatch_id}/redrive`, headers: adminHeaders() })
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'DISPATCH_BUSY')
  t.match(res.json().message, /another-instance/)
  const detail = await s.detail(deferred.dispatch_id)
  t.equal(detail.dispatch.lease.owner, 'another-instance', 'the admin view shows who owns it')
  await s.app.store.release(held!.lease)
})
