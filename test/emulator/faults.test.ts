// Injected faults, latency and rate limits, seen through the real clients.
import t from 'tap'
import { createJob, errorCode, rig } from './helpers.ts'

const r = await rig(t, { executions: 'hold' })
const job = await createJob(r, 'target')
t.afterEach(() => {
  r.emu.clearFaults()
  r.emu.resetCalls()
})

const outcome = (promise: Promise<unknown>): Promise<number | undefined> =>
  promise.then(() => undefined, (e: unknown) => errorCode(e))

t.test('UNAVAILABLE twice, then the real answer; every call is counted', async t => {
  r.emu.addFault({ method: 'GetJob', code: 14, times: 2, message: 'try again' })
  const error = await r.jobs.getJob({ name: job }).catch((e: unknown) => e)
  t.equal(errorCode(error), 14)
  t.match((error as Error).message, 'try again')
  t.equal(await outcome(r.jobs.getJob({ name: job })), 14)
  t.equal(await outcome(r.jobs.getJob({ name: job })), undefined)
  t.equal(r.emu.calls().GetJob, 3)
})

t.test('afterEffect: the execution is created, yet RunJob answers with the error', async t => {
  const before = r.emu.executions().length
  r.emu.addFault({ method: 'RunJob', code: 14, times: 1, afterEffect: true })
  t.equal(await outcome(r.jobs.runJob({ name: job })), 14)
  const created = r.emu.executions()
  t.equal(created.length, before + 1)
  const [got] = await r.jobs.getJob({ name: job })
  t.equal(got.latestCreatedExecution?.name, created.at(-1)?.name, 'visible on the job, as after a real lost response')
  r.emu.finishExecution(created.at(-1)!.name, { exitCode: 0 })
})

t.test('a fault before the effect leaves no trace', async t => {
  const before = r.emu.executions().length
  r.emu.addFault({ method: 'RunJob', code: 8, times: 1 })
  t.equal(await outcome(r.jobs.runJob({ name: job })), 8)
  t.equal(r.emu.executions().length, before)
})

t.test('latency delays the answer (fixed and ranged), then stops after `times`', async t => {
  // The delay is far above what a loaded machine adds to a call, so the contrast holds there too:
  // the faulted call takes at least 2 s, the next one, with the fault used up, well under it.
  r.emu.addFault({ method: 'GetJob', latencyMs: 2000, times: 1 })
  let started = Date.now()
  await r.jobs.getJob({ name: job })
  t.ok(Date.now() - started >= 1990, 'delayed')
  started = Date.now()
  await r.jobs.getJob({ name: job })
  const undelayed = Date.now() - started
  t.ok(undelayed < 1500, `not delayed any more (${undelayed} ms)`)
  r.emu.addFault({ method: 'GetJob', latencyMs: [100, 120] })
  started = Date.now()
  await r.jobs.getJob({ name: job })
  t.ok(Date.now() - started >= 95)
})

t.test('probability 0 never fires; \'*\' matches every method', async t => {
  r.emu.addFault({ method: 'GetJob', code: 13, probability: 0 })
  t.equal(await outcome(r.jobs.getJob({ name: job })), undefined)
  r.emu.addFault({ method: '*', code: 3, times: 2 })
  t.equal(await outcome(r.jobs.listJobs({ parent: 'projects/p/locations/us-central1' })), 3)
  t.equal(await outcome(r.secrets.getSecret({ name: 'projects/p/secrets/x' })), 3)
  t.equal(await outcome(r.jobs.getJob({ name: job })), undefined)
})

t.test('clearFaults removes unlimited faults', async t => {
  r.emu.addFault({ method: 'GetJob', code: 14 })
  t.equal(await outcome(r.jobs.getJob({ name: job })), 14)
  r.emu.clearFaults()
  t.equal(await outcome(r.jobs.getJob({ name: job })), undefined)
})

t.test('rate limit: above perMinute calls in the window → RESOURCE_EXHAUSTED', async t => {
  r.emu.setRateLimit('GetJob', 2)
  t.equal(await outcome(r.jobs.getJob({ name: job })), undefined)
  t.equal(await outcome(r.jobs.getJob({ name: job })), undefined)
  const error = await r.jobs.getJob({ name: job }).catch((e: unknown) => e)
  t.equal(errorCode(error), 8)
  t.match((error as Error).message, /Quota exceeded .* of service 'run\.googleapis\.com'/)
  t.equal(await outcome(r.executions.getExecution({ name: `${job}/executions/x` })), 5, 'other methods are not limited')
  t.equal(r.emu.calls().GetJob, 3)
  r.emu.setRateLimit('GetJob', null)
  t.equal(await outcome(r.jobs.getJob({ name: job })), undefined)
})
