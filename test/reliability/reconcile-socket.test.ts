// A reconcile pass that outlasts the server's socket timeout. The pass's budget
// (PUSHPOOL_RECONCILE_BUDGET_MS, 25 s) is checked between items, and one item (a run it discovers
// and drives) may take up to the webhook deadline (8 s) on top, so a pass can run past 30 s: the
// chaos run saw passes of 26–36 s. The caller (Cloud Scheduler, an admin) must still get the
// report. Here one discovered run whose RunJob takes 32 s makes a 32 s pass on a real socket.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { scene, executionsOf } from '../harness/scene.ts'
import { adminHeaders } from '../helper.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

t.test('a reconcile pass longer than 30 s still answers its caller', async t => {
  const s = await scene(t, prefect, peers, emulator, { env: { PUSHPOOL_WEBHOOK_DEADLINE_MS: '40000' } })
  await s.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = s.app.server.address() as { port: number }
  const run = await s.flowRun()
  emulator.addFault({ method: 'RunJob', latencyMs: 32_000, times: 1 })
  t.teardown(() => emulator.clearFaults())

  const started = Date.now()
  const reply = await fetch(`http://127.0.0.1:${port}/v1/reconcile`, { method: 'POST', headers: adminHeaders(), signal: AbortSignal.timeout(60_000) })
    .then(async res => ({ status: res.status, body: await res.text() }), (err: Error) => ({ status: 0, body: `${err.message} (${String((err.cause as Error | undefined)?.message ?? '')})` }))
  const ms = Date.now() - started
  // The pass goes on even if its caller was cut off.
  for (const until = Date.now() + 15_000; executionsOf(emulator, run).length === 0 && Date.now() < until;) await sleep(200)
  t.equal(executionsOf(emulator, run).length, 1, 'the pass did its work (the run was launched)')
  t.equal(reply.status, 200, `the caller got the report after ${ms} ms: ${reply.body.slice(0, 200)}`)
})
