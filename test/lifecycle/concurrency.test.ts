// Work pool concurrency limits for pushed runs: Prefect enforces them only for polling workers.
import t from 'tap'
import { scene, executionsOf } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { adminHeaders } from '../helper.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

t.test('a pool with limit 2 and 5 due runs never has more than 2 active; the rest follow as slots free', async t => {
  const s = await scene(t, prefect, peers, emulator, { concurrencyLimit: 2 })
  const runs = await Promise.all(Array.from({ length: 5 }, () => s.flowRun()))
  const active = async (): Promise<number> => {
    const states = await Promise.all(runs.map(async id => (await prefect.readFlowRun(id)).state?.type))
    return states.filter(type => type === 'PENDING' || type === 'RUNNING').length
  }
  const replies = await Promise.all(runs.map(id => s.webhook(id)))
  t.equal(replies.filter(r => r.json().state === 'launched').length, 2, 'two launched')
  t.equal(replies.filter(r => r.json().state === 'deferred').length, 3, 'three wait for a slot')
  t.equal(await active(), 2)
  t.equal((await s.reconcile()).driven, 0, 'no slot, nothing driven')
  t.equal(await active(), 2)

  // One run finishes: one slot frees, one more run goes.
  const done = runs.find(id => executionsOf(emulator, id).length === 1) ?? ''
  await prefect.setState(done, { type: 'COMPLETED', name: 'Completed' }, true)
  emulator.finishExecution(executionsOf(emulator, done)[0].name ?? '', { exitCode: 0 })
  await s.reconcile()
  t.equal(await active(), 2, 'still at most two active')
  t.equal(runs.filter(id => executionsOf(emulator, id).length === 1).length, 3)

  const pools = await s.app.inject({ method: 'GET', url: '/v1/pools', headers: adminHeaders() })
  const summary = pools.json().pools[0]
  t.equal(summary.name, s.pool)
  t.equal(summary.counts.launched, 2)
  t.equal(summary.counts.succeeded, 1)
  t.equal(summary.counts.deferred, 2)
  t.ok(summary.launch_latency_ms.median >= 0)
})
