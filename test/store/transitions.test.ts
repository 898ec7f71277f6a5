// The state machine table on its own: its derived sets, and the refusal of any move it does not
// declare. Pure data, no store.
import t from 'tap'
import {
  DISPATCH_STATES, DRIVABLE_STATES, FINAL_STATES, TRANSITIONS, UNLAUNCHED_STATES, sourcesOf, targetOf, type DispatchState
} from '../../src/store/transitions.ts'

const names = Object.keys(TRANSITIONS) as Array<keyof typeof TRANSITIONS>

t.test('final states are exactly those no transition leaves', async t => {
  t.same([...FINAL_STATES].sort(), ['cancelled', 'crashed', 'failed', 'skipped', 'submit_failed', 'succeeded'])
  for (const name of names) {
    for (const from of TRANSITIONS[name].from) t.notOk(FINAL_STATES.includes(from), `${name} leaves ${from}, which is not final`)
  }
})

t.test('every state is reachable from received or deferred (the states a dispatch is created in)', async t => {
  const reached = new Set<DispatchState>(['received', 'deferred'])
  for (let grown = true; grown;) {
    grown = false
    for (const name of names) {
      if (!TRANSITIONS[name].from.some(state => reached.has(state))) continue
      for (const to of TRANSITIONS[name].to) if (!reached.has(to)) { reached.add(to); grown = true }
    }
  }
  t.same([...reached].sort(), [...DISPATCH_STATES].sort())
})

t.test('drivable states are the ones a drive or redrive advances; launched is reconcile\'s alone', async t => {
  t.same([...DRIVABLE_STATES].sort(), ['claimed', 'deferred', 'launching', 'received', 'retrying'])
  t.notOk(DRIVABLE_STATES.includes('launched'))
  t.same([...UNLAUNCHED_STATES].sort(), ['claimed', 'deferred', 'received', 'retrying'])
  t.notOk(UNLAUNCHED_STATES.includes('launching'), 'a RunJob may be in flight')
})

t.test('a launch can only be recorded through launching, and only launched runs are closed', async t => {
  const into = (state: DispatchState): string[] => names.filter(n => (TRANSITIONS[n].to as readonly string[]).includes(state))
  t.same(into('launched'), ['launched'])
  t.same(TRANSITIONS.launched.from, ['launching'])
  t.same(into('launching'), ['launch'])
  t.same(TRANSITIONS.close.from, ['launched'])
})

t.test('targetOf and sourcesOf refuse what the table does not declare', async t => {
  t.equal(targetOf('claim'), 'claimed')
  t.equal(targetOf('close', 'crashed'), 'crashed')
  t.throws(() => targetOf('close'), /close cannot enter \(unspecified\)/, 'a transition with several targets needs one named')
  t.throws(() => targetOf('claim', 'launched'), /claim cannot enter launched; it enters claimed/)
  t.same(sourcesOf('retry'), ['claimed', 'retrying', 'launching'])
  t.same(sourcesOf('retry', ['launching']), ['launching'])
  t.throws(() => sourcesOf('claim', ['launched']), /claim cannot leave launched/)
})
