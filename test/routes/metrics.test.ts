// /metrics after real dispatches: every family the operators' dashboards rely on is present, with
// values that follow from what happened.
import t from 'tap'
import { scene } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { adminHeaders } from '../helper.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

t.test('metrics count dispatches, latency, Cloud Run and Prefect calls, and reconcile passes', async t => {
  const s = await scene(t, prefect, peers, emulator)
  emulator.addFault({ method: 'RunJob', code: 14, times: 1 })
  t.teardown(() => emulator.clearFaults())
  for (let i = 0; i < 2; i++) t.equal((await s.webhook(await s.flowRun())).json().state, 'launched')
  await s.reconcile()

  const denied = await s.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(denied.statusCode, 401, 'metrics need admin credentials')
  const res = await s.app.inject({ method: 'GET', url: '/metrics', headers: adminHeaders() })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  const text = res.body
  const value = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? NaN)
  t.equal(value(new RegExp(`pushpool_dispatches_total\\{pool="${s.pool}",state="launched"\\} (\\d+)`)), 2)
  t.equal(value(new RegExp(`pushpool_dispatch_latency_seconds_count\\{pool="${s.pool}"\\} (\\d+)`)), 2)
  t.equal(value(/pushpool_cloud_run_calls_total\{method="RunJob",code="14"\} (\d+)/), 1, 'the failed RunJob is counted with its status')
  t.equal(value(/pushpool_cloud_run_calls_total\{method="RunJob",code="0"\} (\d+)/), 2)
  t.ok(value(/pushpool_prefect_calls_total\{route="POST \/flow_runs\/\{id\}\/set_state",status="201"\} (\d+)/) >= 2)
  t.equal(value(/pushpool_reconcile_duration_seconds_count (\d+)/), 1)
  t.match(text, /# TYPE pushpool_dispatch_latency_seconds histogram/)
  t.notOk(text.includes(peers.authString), 'no secret in metrics')
})
