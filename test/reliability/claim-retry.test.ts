// Claims that Prefect did not confirm. pushpool claims a run by proposing Pending; when that
// proposal fails, is lost, or its process dies first, the dispatch must neither launch a run it
// does not own (which, once Prefect has moved the run to Late and that state was dispatched, would
// launch it twice) nor give up a run it does own (which would leave it Pending forever).
import t, { type Test } from 'tap'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { scene, executionsOf, type Scene } from '../harness/scene.ts'
import { build, webhookHeaders, webhookPayload, adminHeaders } from '../helper.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { recordingProxy, type RecordingProxy } from './raw-http.ts'
import type { FastifyInstance } from 'fastify'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const late = (run: string) => prefect.setState(run, { type: 'SCHEDULED', name: 'Late', state_details: { scheduled_time: new Date(Date.now() - 60_000).toISOString() } }, true)

/** A scene plus a second app on the same pool whose Prefect traffic goes through a proxy the test controls. */
async function behindProxy (t: Test): Promise<{ s: Scene, proxy: RecordingProxy, app: FastifyInstance }> {
  const s = await scene(t, prefect, peers, emulator)
  const proxy = await recordingProxy(peers.apiUrl)
  t.teardown(() => proxy.close())
  const app = await build(t, {
    env: {
      PREFECT_API_URL: proxy.url,
      PREFECT_API_AUTH_STRING: peers.authString,
      PUSHPOOL_POOLS: s.pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
      // Long enough that the deferred dispatch's own retry timer stays out of each test's way:
      // the tests drive it themselves (a Late webhook, reconcile, a redrive).
      PUSHPOOL_RETRY_DELAY_SECONDS: '20'
    }
  })
  return { s, proxy, app }
}

const webhook = (app: FastifyInstance, run: string, event: string) =>
  app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(), payload: webhookPayload(run, event) })

t.test('a Pending proposal Prefect never applied, then a Late state: one execution, not two', async t => {
  const { s, proxy, app } = await behindProxy(t)
  const run = await s.flowRun()
  proxy.fail = request => request.startsWith(`POST /flow_runs/${run}/set_state`)
  const first = await webhook(app, run, 'prefect.flow-run.Scheduled')
  proxy.fail = null
  t.not(first.json().state, 'launched', `Prefect never answered the Pending proposal: the dispatch waits (${first.json().state as string})`)
  t.not(first.json().state, 'retrying', 'and is not `retrying`, which would launch without a claim')
  t.equal((await prefect.readFlowRun(run)).state?.type, 'SCHEDULED', 'Prefect never applied it')

  // Prefect's late-runs service: Scheduled → Late (default after 15 s; the retry delay is 30 s).
  await late(run)
  const second = await webhook(app, run, 'prefect.flow-run.Late')
  t.equal(second.json().state, 'launched', 'the Late state is dispatched and launched')
  t.equal(executionsOf(emulator, run).length, 1)

  const report = await app.inject({ method: 'POST', url: '/v1/reconcile', headers: adminHeaders() })
  t.equal(report.statusCode, 200)
  const detail = (await app.inject({ method: 'GET', url: `/v1/dispatches/${first.json().dispatch_id as string}`, headers: adminHeaders() })).json()
  t.equal(executionsOf(emulator, run).length, 1, `still one execution after reconcile (the first dispatch is ${detail.dispatch.state as string})`)
})

t.test('a Pending proposal applied but its reply lost: the dispatch knows the run is its own', async t => {
  const { s, proxy, app } = await behindProxy(t)
  const run = await s.flowRun()
  // Every attempt of the first proposal takes effect and then fails: the retries meet a run that
  // is already Pending.
  proxy.fail = request => request.startsWith(`POST /flow_runs/${run}/set_state`) ? 'after' : false
  const first = await webhook(app, run, 'prefect.flow-run.Scheduled')
  proxy.fail = null
  t.equal((await prefect.readFlowRun(run)).state?.type, 'PENDING', 'Prefect applied the proposal')
  if (first.json().state !== 'launched') {
    await app.inject({ method: 'POST', url: '/v1/reconcile', headers: adminHeaders() })
    await app.inject({ method: 'POST', url: `/v1/dispatches/${first.json().dispatch_id as string}/redrive`, headers: adminHeaders() })
  }
  const detail = (await app.inject({ method: 'GET', url: `/v1/dispatches/${first.json().dispatch_id as string}`, headers: adminHeaders() })).json()
  t.equal(detail.dispatch.state, 'launched', 'the dispatch recognised its own Pending and launched')
  t.equal(executionsOf(emulator, run).length, 1, 'once')
})

t.test('a claim left behind by a dead process, then a Late state: one execution, not two', async t => {
  const s = await scene(t, prefect, peers, emulator)
  const run = await s.flowRun()
  const scheduled = (await prefect.readFlowRun(run)).state!
  // What a process leaves when it dies right after its compare-and-set to `claimed`, before its
  // Pending proposal reached Prefect.
  const { dispatch } = await s.app.store.createDispatch({
    key: `${run}:${scheduled.id}`, flowRunId: run, flowRunName: null, pool: s.pool, deploymentId: s.deploymentId,
    state: 'received', dueAt: null, receivedAt: new Date().toISOString(), detail: 'webhook (test: the process then died)'
  })
  await s.app.store.transition(dispatch.id, 'claim', {}, { detail: 'proposing Pending to Prefect' })

  await late(run)
  const lateReply = await s.webhook(run, 'prefect.flow-run.Late')
  t.equal(executionsOf(emulator, run).length, lateReply.json().state === 'launched' ? 1 : 0, `the Late webhook: ${lateReply.body}`)

  // Reconcile redrives a stale `claimed` dispatch after STALE_MS (120 s); an admin redrive is the same drive, now.
  const redrive = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${dispatch.id}/redrive`, headers: adminHeaders() })
  t.equal(redrive.statusCode, 200)
  await s.reconcile()
  t.equal(executionsOf(emulator, run).length, 1, `exactly one execution once the dead process's claim was driven (it is ${redrive.json().dispatch.state as string})`)
  t.not((await prefect.readFlowRun(run)).state?.type, 'SCHEDULED', 'and the run is claimed, not left waiting')
})
