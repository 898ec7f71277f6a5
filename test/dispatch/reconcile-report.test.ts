// The reconcile report says what failed and why, not only how many: Prefect unreachable here (a
// closed port), so every step that asks it fails, and the pass still answers 200 with the list.
import t from 'tap'
import { build, adminHeaders } from '../helper.ts'

t.test('a pass with Prefect down lists each failing step, its pool and Prefect\'s own reason', async t => {
  const app = await build(t, { env: { PUSHPOOL_POOLS: 'pool-a,pool-b' } })
  const res = await app.inject({ method: 'POST', url: '/v1/reconcile', headers: adminHeaders() })
  t.equal(res.statusCode, 200, 'the pass completes: nothing about Prefect being down is the caller\'s to fix')
  const report = res.json()
  t.equal(report.errors, report.failures.length, 'each failure is listed (fewer than the cap)')
  const steps = report.failures.map((f: { step: string, pool: string | null }) => `${f.step}:${f.pool}`)
  for (const pool of ['pool-a', 'pool-b']) {
    for (const step of ['discover', 'arm', 'heartbeat']) t.ok(steps.includes(`${step}:${pool}`), `${step} of ${pool} is listed`)
  }
  t.match(report.failures[0].message, /Prefect API .*(unreachable|refused|ECONNREFUSED)/i, 'Prefect\'s reason, in pushpool\'s words')
  t.equal(report.heartbeats, 0)
})
