// The launcher on its own, against the emulator through the real @google-cloud/run clients: which
// Cloud Run calls a launch makes when RunJob fails, and how many. A look for an earlier attempt's
// execution (ListExecutions) is needed only when that attempt may have been applied; a quota
// rejection was not, and rests RunJob in its location for a while; concurrent first launches on a
// job share one CreateJob.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { v2 } from '@google-cloud/run'
import { startEmulator, emulatorClientOptions, type Emulator } from '../../src/emulator/index.ts'
import { Launcher, DISPATCH_MARKER_ENV, type LaunchOutcome, type LaunchPlan, type LauncherOptions } from '../../src/cloudrun/launcher.ts'
import type { CloudRunClients } from '../../src/gcp/clients.ts'

const PARENT = 'projects/proj-launch/locations/us-central1'
const noWait = (): number => 0

async function setup (t: Test, options: LauncherOptions = { quotaPauseMs: () => 60_000 }): Promise<{ emulator: Emulator, clients: CloudRunClients, launcher: Launcher }> {
  const emulator = await startEmulator({ executions: 'hold' })
  const clientOptions = { ...emulatorClientOptions(emulator.endpoint), projectId: 'proj-launch' }
  const clients = { jobs: new v2.JobsClient(clientOptions), executions: new v2.ExecutionsClient(clientOptions), authClient: null }
  t.teardown(async () => {
    await Promise.all([clients.jobs.close(), clients.executions.close()])
    await emulator.close()
  })
  return { emulator, clients, launcher: new Launcher(options) }
}

function plan (jobId = `job-${randomUUID().slice(0, 8)}`): LaunchPlan {
  const dispatchId = randomUUID()
  return {
    mode: 'reuse',
    dispatchId,
    jobName: `${PARENT}/jobs/${jobId}`,
    job: { template: { template: { containers: [{ image: 'us-docker.pkg.dev/p/r/flow:1' }] } } },
    overrides: { env: [{ name: DISPATCH_MARKER_ENV, value: dispatchId }], timeoutSeconds: 600 },
    notBefore: new Date(Date.now() - 60_000)
  }
}

const unavailable = (outcome: LaunchOutcome): Extract<LaunchOutcome, { kind: 'unavailable' }> => {
  if (outcome.kind !== 'unavailable') throw new Error(`expected the launch to be unavailable, got ${outcome.kind}`)
  return outcome
}
const launched = (outcome: LaunchOutcome): Extract<LaunchOutcome, { kind: 'launched' }> => {
  if (outcome.kind !== 'launched') throw new Error(`expected a launch, got ${outcome.kind}: ${outcome.error.message}`)
  return outcome
}
const errorOf = (outcome: LaunchOutcome): Error => {
  if (outcome.kind === 'launched') throw new Error('expected the launch to fail')
  return outcome.error
}

const executionsOf = (emulator: Emulator, p: LaunchPlan): number => emulator.executions().filter(e =>
  (e.template?.containers?.[0]?.env ?? []).some(v => v.name === DISPATCH_MARKER_ENV && v.value === p.dispatchId)).length

t.test('a quota rejection is not followed by a look for an execution, and rests RunJob in its location', async t => {
  const { emulator, clients, launcher } = await setup(t)
  const first = plan()
  await launcher.launch(clients, first, { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })
  emulator.setRateLimit('RunJob', 0)
  emulator.resetCalls()

  const rejected = plan(first.jobName.split('/jobs/')[1])
  const failures: Array<number | null> = []
  const err = await launcher.launch(clients, rejected, {
    maxAttempts: 3, executionMayExist: false, backoffMs: noWait, onAttemptFailed: f => { failures.push(f.status) }
  })
  t.equal(err.kind, 'unavailable', 'the launch gave up')
  t.equal(unavailable(err).executionMayExist, false, 'and knows no execution can exist')
  t.match(errorOf(err).message, /Quota exceeded/)
  t.same(failures, [8], 'one RunJob sent: the quota pause stopped the other attempts')
  t.same(emulator.calls(), { RunJob: 1 }, 'no ListExecutions, no CreateJob')

  // Another launch in the same location, while the pause lasts: nothing is sent at all.
  emulator.resetCalls()
  const paused = await launcher.launch(clients, plan(), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })
  t.equal(paused.kind, 'unavailable')
  t.match(errorOf(paused).message, /quota .* is used up/)
  t.equal(unavailable(paused).executionMayExist, false)
  t.same(emulator.calls(), {}, 'no Cloud Run call during the pause')
  t.equal(executionsOf(emulator, rejected), 0)
})

t.test('the quota rest ends when this process\'s oldest call of the last minute leaves the quota\'s window, if that is sooner', async t => {
  // A usual pause longer than the quota's minute, so the window's end is what shows.
  const { emulator, clients, launcher } = await setup(t, { quotaPauseMs: () => 120_000 })
  const before = Date.now()
  launched(await launcher.launch(clients, plan(), { maxAttempts: 1, executionMayExist: false, backoffMs: noWait }))
  const after = Date.now()
  emulator.setRateLimit('RunJob', 0)
  const rejected = unavailable(await launcher.launch(clients, plan(), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait }))
  const retryAt = rejected.error.retryAt?.getTime() ?? Number.NaN
  t.ok(retryAt >= before + 60_000 && retryAt <= after + 60_000, `a minute after the admitted call (${retryAt - after} ms after it was answered)`)
  const paused = unavailable(await launcher.launch(clients, plan(), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait }))
  t.equal(paused.error.retryAt?.getTime(), retryAt, 'a launch during the rest is told the same time')

  // No call of its own in the window: nothing to know better than the usual pause.
  const fresh = new Launcher({ quotaPauseMs: () => 120_000 })
  const start = Date.now()
  const alone = unavailable(await fresh.launch(clients, plan(), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait }))
  t.ok((alone.error.retryAt?.getTime() ?? 0) >= start + 120_000, 'the usual pause')
})

t.test('when the quota\'s rest ends, one RunJob probes it while the other launches there wait for its answer', async t => {
  const { emulator, clients, launcher } = await setup(t, { quotaPauseMs: () => 200 })
  const job = plan().jobName.split('/jobs/')[1]
  emulator.setRateLimit('RunJob', 0)
  unavailable(await launcher.launch(clients, plan(job), { maxAttempts: 1, executionMayExist: false, backoffMs: noWait }))
  await new Promise(resolve => setTimeout(resolve, 300))
  emulator.resetCalls()
  const refused = await Promise.all(Array.from({ length: 5 }, () => launcher.launch(clients, plan(job), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })))
  t.same(refused.map(o => o.kind), Array(5).fill('unavailable'))
  t.same(emulator.calls(), { RunJob: 1 }, 'still no room: one probe refused, and the rest learnt it without a call')

  await new Promise(resolve => setTimeout(resolve, 300))
  emulator.setRateLimit('RunJob', null)
  emulator.resetCalls()
  const plans = Array.from({ length: 5 }, () => plan(job))
  const admitted = await Promise.all(plans.map(p => launcher.launch(clients, p, { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })))
  t.same(admitted.map(o => o.kind), Array(5).fill('launched'), 'room again: the probe was admitted and the others followed')
  t.same(emulator.calls(), { RunJob: 5 })
  t.same(plans.map(p => executionsOf(emulator, p)), Array(5).fill(1))
})

t.test('without a pause, each quota-rejected attempt is retried without a look', async t => {
  const { emulator, clients, launcher } = await setup(t, { quotaPauseMs: noWait })
  emulator.setRateLimit('RunJob', 0)
  const p = plan()
  const err = await launcher.launch(clients, p, { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })
  t.equal(err.kind, 'unavailable')
  t.equal(unavailable(err).executionMayExist, false)
  t.same(emulator.calls(), { CreateJob: 1, RunJob: 3 }, 'three RunJob calls and no ListExecutions')
})

t.test('a launch that had to look first still says an execution may exist when quota stops it', async t => {
  const { emulator, clients, launcher } = await setup(t, { quotaPauseMs: noWait })
  emulator.setRateLimit('RunJob', 0)
  const err = await launcher.launch(clients, plan(), { maxAttempts: 2, executionMayExist: true, backoffMs: noWait })
  t.equal(err.kind, 'unavailable')
  t.equal(unavailable(err).executionMayExist, true, 'what an earlier launch may have left is still unknown')
  t.equal(emulator.calls().ListExecutions, 2, 'it looked before each RunJob')
})

t.test('an ambiguous failure is followed by a look, which adopts the execution it left', async t => {
  for (const [code, message] of [[14, 'UNAVAILABLE'], [4, 'DEADLINE_EXCEEDED'], [13, 'INTERNAL'], [8, 'RESOURCE_EXHAUSTED without a quota reason']] as const) {
    const { emulator, clients, launcher } = await setup(t)
    emulator.addFault({ method: 'RunJob', code, times: 1, afterEffect: true, message })
    const p = plan()
    const result = launched(await launcher.launch(clients, p, { maxAttempts: 3, executionMayExist: false, backoffMs: noWait }))
    t.equal(result.adopted, true, `${message}: adopted`)
    t.equal(executionsOf(emulator, p), 1, `${message}: one execution`)
    t.same(emulator.calls(), { CreateJob: 1, RunJob: 1, ListExecutions: 1 }, `${message}: one look, no second RunJob`)
    t.match(result.logUri, /^https:\/\/console\.cloud\.google\.com\/logs/, `${message}: the adopted execution's log link`)
  }
})

t.test('an ambiguous failure keeps every later attempt looking, and the launch reports it', async t => {
  const { emulator, clients, launcher } = await setup(t, { quotaPauseMs: noWait })
  // UNAVAILABLE (nothing applied, but the client cannot know), then quota rejections.
  emulator.addFault({ method: 'RunJob', code: 14, times: 1 })
  emulator.addFault({ method: 'RunJob', code: 8, message: 'Quota exceeded for quota metric \'Job run requests\'' })
  const err = await launcher.launch(clients, plan(), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })
  t.equal(err.kind, 'unavailable')
  t.equal(unavailable(err).executionMayExist, true)
  t.equal(emulator.calls().ListExecutions, 2, 'a look before attempts 2 and 3')
})

t.test('concurrent first launches on a new job share one CreateJob', async t => {
  const { emulator, clients, launcher } = await setup(t)
  emulator.addFault({ method: 'CreateJob', latencyMs: 200 })
  const jobId = `shared-${randomUUID().slice(0, 8)}`
  const plans = Array.from({ length: 20 }, () => plan(jobId))
  const results = (await Promise.all(plans.map(p => launcher.launch(clients, p, { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })))).map(launched)
  t.same(emulator.calls(), { CreateJob: 1, RunJob: 20 })
  t.equal(results.filter(r => r.reply.createdJob).length, 1, 'one launch reports creating it')
  t.equal(new Set(results.map(r => r.executionName)).size, 20)
  t.ok(results.every(r => r.logUri !== null), 'RunJob\'s reply names each execution\'s logs')
})

t.test('a shared CreateJob that fails transiently fails its waiters\' attempts too; their retries create it once', async t => {
  const { emulator, clients, launcher } = await setup(t)
  emulator.addFault({ method: 'CreateJob', code: 14, times: 1, latencyMs: 100 })
  const jobId = `flaky-${randomUUID().slice(0, 8)}`
  const plans = Array.from({ length: 5 }, () => plan(jobId))
  const results = (await Promise.all(plans.map(p => launcher.launch(clients, p, { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })))).map(launched)
  t.equal(results.length, 5)
  t.equal(emulator.calls().CreateJob, 2, 'the failed call, then one more')
  t.equal(emulator.calls().RunJob, 5)
  t.equal(emulator.calls().ListExecutions ?? 0, 0, 'no RunJob had been sent, so nothing to look for')
})

t.test('a permanent CreateJob refusal is not retried', async t => {
  const { emulator, clients, launcher } = await setup(t)
  emulator.addFault({ method: 'CreateJob', code: 3, times: 1, message: 'template.containers[0].image: bad reference' })
  const err = await launcher.launch(clients, plan(), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait })
  t.equal(err.kind, 'refused', 'a refusal, which crashes the run')
  t.match(errorOf(err).message, /CreateJob failed.*bad reference/)
  t.same(emulator.calls(), { CreateJob: 1 })
})

t.test('a launch asks its hook before each Cloud Run call, and makes none the hook refuses', async t => {
  const { emulator, clients, launcher } = await setup(t)
  const asked: string[] = []
  const refusal = new Error('the lease was lost')
  await t.rejects(launcher.launch(clients, plan(), {
    maxAttempts: 3, executionMayExist: true, backoffMs: noWait, beforeCall: async call => { asked.push(call); throw refusal }
  }), refusal, 'what the hook throws ends the launch')
  t.same(asked, ['look'])
  t.same(emulator.calls(), {}, 'no call was made')

  asked.length = 0
  const p = plan()
  const outcome = await launcher.launch(clients, p, { maxAttempts: 3, executionMayExist: true, backoffMs: noWait, beforeCall: async call => { asked.push(call) } })
  t.equal(outcome.kind, 'launched')
  t.same(asked, ['look', 'create', 'run'], 'one ask per call, in order')
  t.equal(executionsOf(emulator, p), 1)

  // A launch whose hook refuses CreateJob while others wait on it: the waiters create the job themselves.
  emulator.resetCalls()
  const jobId = `hooked-${randomUUID().slice(0, 8)}`
  const [stopped, ...others] = await Promise.allSettled([
    launcher.launch(clients, plan(jobId), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait, beforeCall: async call => { if (call === 'create') throw refusal } }),
    ...Array.from({ length: 3 }, () => launcher.launch(clients, plan(jobId), { maxAttempts: 3, executionMayExist: false, backoffMs: noWait }))
  ])
  t.equal(stopped.status, 'rejected')
  t.same(others.map(o => o.status === 'fulfilled' ? o.value.kind : o.reason), ['launched', 'launched', 'launched'])
  t.same(emulator.calls(), { CreateJob: 1, RunJob: 3 })
})
