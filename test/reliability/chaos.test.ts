// The CI variant of `npm run chaos` (scripts/chaos.ts): the same faults and the same verdict, on
// 40 flow runs instead of 500. Two pushpool processes on one PostgreSQL database, one SIGKILLed
// mid-burst and restarted; RunJob failing 15% of the time (half after the execution exists);
// Prefect answering 5% of pushpool's requests with 503. No run may get two executions, and none
// may be left without one.
//
// Bounded in time: the settle phase gives up after 300 s. Most of the run is the wait for
// reconcile to take over the drives the killed instance left behind, which it does once they are
// 120 s old (STALE_MS in src/dispatch/reconcile.ts).
import t from 'tap'
import { NO_POSTGRES, postgresTestUrl } from '../store/postgres-database.ts'
import { runScript } from './script-run.ts'

const RUNS = 40
const HARD_LIMIT_MS = 540_000

if (postgresTestUrl() === undefined) {
  t.comment(NO_POSTGRES)
} else {
  t.test(`chaos: ${RUNS} runs, faults everywhere, an instance killed: no duplicate, nothing lost`, async t => {
    const { code, stdout, stderr } = await runScript('chaos.ts', ['--runs', String(RUNS), '--settle-timeout', '300'], HARD_LIMIT_MS)

    const verdict = /^chaos: runs=(\d+) duplicates=(\d+) lost=(\d+) crashed_by_faults=(\d+)$/m.exec(stdout)
    t.ok(verdict, 'the script printed its verdict line')
    if (verdict === null || code !== 0) t.comment(`stdout:\n${stdout}\nstderr (tail):\n${stderr.split('\n').slice(-40).join('\n')}`)
    t.equal(code, 0, 'and exited 0')
    if (verdict !== null) {
      const [, runs, duplicates, lost, crashed] = verdict.map(Number)
      t.equal(runs, RUNS, `${RUNS} runs`)
      t.equal(duplicates, 0, 'no run launched twice')
      t.equal(lost, 0, 'no run lost')
      t.comment(`crashed_by_faults=${crashed}`)
    }
    t.match(stdout, /instance_b_starts=2/, 'instance b was killed and restarted')
    t.match(stdout, /prefect_503_injected=[1-9]/, 'Prefect 503s were injected')
  })
}
