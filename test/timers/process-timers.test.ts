// The in-process timers' retry of a failed firing: pure timer logic, with a firing function of the
// test's own in place of the dispatcher. The whole path (a timer whose drive finds Prefect
// unreachable, fired again and launched with no reconcile) is in test/lifecycle/timers.test.ts.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { ProcessTimers, QUEUE_RETRY, backoffMs, type FiringRetry } from '../../src/timers/process-timers.ts'
import type { Timer } from '../../src/timers/timers.ts'

// The timers are unref'd (they must not hold a process open on shutdown): this keeps the test's open.
const keepAlive = setInterval(() => {}, 1000)
t.teardown(() => clearInterval(keepAlive))

const FAST: FiringRetry = { attempts: 4, minBackoffMs: 5, maxBackoffMs: 20 }
const timer = (dispatchId = 'd1'): Timer => ({ dispatchId, dispatchKey: `${dispatchId}:state`, fireAt: new Date() })

/** A firing function that fails its first `failures` calls; `called` resolves once it has been called `n` times. */
function firing (failures: number, onCall: (call: number) => void = () => {}) {
  let calls = 0
  const waiters: Array<{ n: number, resolve: () => void }> = []
  return {
    fire: async (): Promise<void> => {
      calls++
      onCall(calls)
      for (const w of waiters.filter(w => calls >= w.n)) w.resolve()
      if (calls <= failures) throw new Error('Prefect API GET /flow_runs/{id} timed out after 5000 ms')
    },
    calls: () => calls,
    called: (n: number) => new Promise<void>(resolve => { if (calls >= n) resolve(); else waiters.push({ n, resolve }) })
  }
}

t.test('the backoff doubles from the least to the most, as Cloud Tasks backs off', async t => {
  t.same([1, 2, 3, 4, 5, 6, 7, 20].map(a => backoffMs(QUEUE_RETRY, a)), [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000])
})

t.test('the retry is the Cloud Tasks queue\'s that cloudbuild.yaml creates', async t => {
  const cloudbuild = readFileSync(new URL('../../cloudbuild.yaml', import.meta.url), 'utf8')
  const flags = /gcloud tasks queues create .*--max-attempts=(\d+) --min-backoff=(\d+)s --max-backoff=(\d+)s/.exec(cloudbuild)
  t.ok(flags, 'cloudbuild.yaml creates the queue with its retry flags')
  t.same(QUEUE_RETRY, { attempts: Number(flags?.[1]), minBackoffMs: Number(flags?.[2]) * 1000, maxBackoffMs: Number(flags?.[3]) * 1000 })
})

t.test('a firing that fails is fired again after a backoff, until it succeeds', async t => {
  const f = firing(2)
  const timers = new ProcessTimers(f.fire, FAST)
  t.teardown(() => timers.close())
  await timers.arm(timer())
  await f.called(3)
  await sleep(100)
  t.equal(f.calls(), 3, 'two failures, then the firing that succeeded; nothing after it')
  t.equal(timers.size, 0, 'no timer is left armed')
})

t.test('a firing that keeps failing is given up after the attempts: reconcile drives the dispatch then', async t => {
  const f = firing(Infinity)
  const timers = new ProcessTimers(f.fire, FAST)
  t.teardown(() => timers.close())
  await timers.arm(timer())
  await f.called(FAST.attempts)
  await sleep(200)
  t.equal(f.calls(), FAST.attempts, `fired ${FAST.attempts} times in all`)
  t.equal(timers.size, 0)
})

t.test('a timer armed again while its firing failed (a reconcile pass) makes one timer, not two', async t => {
  let timers: ProcessTimers | undefined
  const same = timer()
  const f = firing(1, call => { if (call === 1) void timers?.arm(same) })
  timers = new ProcessTimers(f.fire, FAST)
  t.teardown(() => timers?.close())
  await timers.arm(same)
  await f.called(2)
  await sleep(100)
  t.equal(f.calls(), 2, 'the failed firing left the timer armed anew alone')
})

t.test('closed timers fire nothing again', async t => {
  let timers: ProcessTimers | undefined
  const f = firing(Infinity, () => { void timers?.close() })
  timers = new ProcessTimers(f.fire, FAST)
  await timers.arm(timer())
  await f.called(1)
  await sleep(100)
  t.equal(f.calls(), 1)
  t.equal(timers.size, 0)
})

t.test('a timer disarmed while it waits to fire again does not fire', async t => {
  const f = firing(Infinity)
  const timers = new ProcessTimers(f.fire, { attempts: 3, minBackoffMs: 50, maxBackoffMs: 50 })
  t.teardown(() => timers.close())
  const armed = timer()
  await timers.arm(armed)
  await f.called(1)
  await sleep(0)
  t.equal(timers.size, 1, 'waiting to fire again')
  await timers.disarm(armed)
  await sleep(200)
  t.equal(f.calls(), 1)
})
