// The CI variant of `npm run chaos` (scripts/chaos.ts): the same faults and the same verdict, on
// 100 flow runs instead of 500. Two pushpool processes on one PostgreSQL database, one SIGKILLed
// mid-burst while it holds leases and restarted, then both reconciling every second at once;
// RunJob failing 15% of the time (half after the execution exists); Prefect answering 5% of
// pushpool's requests with 503; some runs ended in Prefect while their containers run. No run may
// get two executions, none may be left without one, and no execution may outlive its run.
//
// Bounded in time: the settle phase gives up after 300 s. Reconcile takes over what the killed
// instance left as soon as each lease runs out (at most a call's deadline and a margin).
import t from 'tap'
import { NO_POSTGRES, postgresTestUrl } from '../store/postgres-database.ts'
import { runScript } from './script-run.ts'

const RUNS = 100
const HARD_LIMIT_MS = 540_000

if (postgresTestUrl() === undefined) {
  t.comment(NO_POSTGRES)
} else {
  t.test(`chaos: ${RUNS} runs, faults everywhere, an instance killed: no duplicate, nothing lost`, async t => {
    const { code, stdout, stderr } = await runScript('chaos.ts', ['--runs', String(RUNS), '--settle-timeout', '300'], HARD_LIMIT_MS)

    const verdict = /^chaos: runs=(\d+) duplicates=(\d+) lost=(\d+) zombies=(\d+) crashed_by_faults=(\d+)$/m.exec(stdout)
    t.ok(verdict, 'the script printed its verdict line')
    if (verdict === null || code !== 0) t.comment(`stdout:\n${stdout}\nstderr (tail):\n${stderr.split('\n').slice(-40).join('\n')}`)
    t.equal(code, 0, 'and exited 0')
    if (verdict !== null) {
      const [, runs, duplicates, lost, zombies, crashed] = verdict.map(Number)
      t.equal(runs, RUNS, `${RUNS} runs`)
      t.equal(duplicates, 0, 'no run launched twice')
      t.equal(lost, 0, 'no run lost')
      t.equal(zombies, 0, 'no execution outlives its run')
      t.comment(`crashed_by_faults=${crashed}`)
    }
    t.match(stdout, /instance_b_starts=2/, 'instance b was killed and restarted')
    t.match(stdout, /prefect_503_injected=[1-9]/, 'Prefect 503s were injected')
    t.match(stderr, /ended [1-9]\d* runs in Prefect while their containers run/, 'runs were ended under their containers')
    const recovery = /^chaos: recovery: .*$/m.exec(stdout)
    if (recovery !== null) t.comment(recovery[0])
  })
}
