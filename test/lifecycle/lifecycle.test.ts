// What happens after (and around) launch, now that no worker watches the run: scheduled runs,
// retries from Prefect's UI, crash detection, reconcile and retention. Real Prefect, real client,
// the emulator in 'hold' mode so each test decides how an execution ends.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { scene, executionsOf, type Scene, type SceneOptions } from '../harness/scene.ts'
import { ADMIN_TOKEN } from '../helper.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold', missingImagePattern: /does-not-exist/ })
t.teardown(() => emulator.close())

const stage = (t: Test, options?: SceneOptions): Promise<Scene> => scene(t, prefect, peers, emulator, options)
const at = (ms: number): string => new Date(Date.now() + ms).toISOString()

async function launched (t: Test, s: Scene): Promise<{ flowRunId: string, dispatchId: string, execution: string }> {
  const flowRunId = await s.flowRun()
  const res = await s.webhook(flowRunId)
  t.equal(res.json().state, 'launched', 'launched')
  const run = await prefect.readFlowRun(flowRunId)
  return { flowRunId, dispatchId: res.json().dispatch_id, execution: run.infrastructure_pid ?? '' }
}

t.test('a run scheduled for later is deferred, then launched once when due, by its timer and reconcile racing', async t => {
  const s = await stage(t, { env: { PUSHPOOL_PREFETCH_SECONDS: '1' } })
  // Due far enough ahead that a slow webhook and pass on a loaded machine still come before it.
  const due = Date.now() + 8000
  const flowRunId = await s.flowRun({ type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: new Date(due).toISOString() } })
  const res = await s.webhook(flowRunId)
  t.equal(res.statusCode, 202)
  t.equal(res.json().state, 'deferred')
  t.equal((await s.reconcile()).driven, 0, 'not yet due')
  t.equal(executionsOf(emulator, flowRunId).length, 0)
  // Its in-process timer fires 1 s before it is due; a reconcile pass at about the same time
  // finds it due as well. Whichever takes it, the other finds it owned or moved on.
  await sleep(Math.max(0, due - 1000 - Date.now()))
  const report = await s.reconcile()
  t.ok(Number(report.driven) <= 1, `reconcile drove it at most once (${String(report.driven)})`)
  let state = ''
  for (const giveUp = Date.now() + 30_000; state !== 'launched' && Date.now() < giveUp; await sleep(200)) {
    state = (await s.detail(res.json().dispatch_id)).dispatch.state
  }
  t.equal(state, 'launched')
  t.equal(executionsOf(emulator, flowRunId).length, 1, 'one execution')
})

t.test('a Late run (the scheduler\'s runs send no Scheduled event) is dispatched on its Late event', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun({ type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: at(-60_000) } })
  await prefect.setState(flowRunId, { type: 'SCHEDULED', name: 'Late', state_details: { scheduled_time: at(-60_000) } }, true)
  const res = await s.webhook(flowRunId, 'prefect.flow-run.Late')
  t.equal(res.json().state, 'launched')
  t.equal(executionsOf(emulator, flowRunId).length, 1)
})

t.test('reconcile dispatches due runs whose webhook never came, once, and reports the pool READY', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun()
  const [first, second] = await Promise.all([s.reconcile(), s.reconcile()])
  t.equal(first.discovered, 1)
  t.same(second, first, 'a concurrent call shares the running pass')
  const third = await s.reconcile()
  t.equal(third.discovered, 0, 'idempotent: nothing new the second time')
  t.equal(executionsOf(emulator, flowRunId).length, 1)
  t.ok(Number(third.heartbeats) >= 1)
  const pool = await prefect.readWorkPool(s.pool)
  t.equal((pool as unknown as { status: string }).status, 'READY', 'Prefect shows the pool READY')
})

t.test('a retry from Prefect\'s UI (AwaitingRetry) is a new dispatch of the same run', async t => {
  const s = await stage(t)
  const { flowRunId, dispatchId } = await launched(t, s)
  await prefect.setState(flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  await prefect.setState(flowRunId, { type: 'FAILED', name: 'Failed' }, true)
  await prefect.setState(flowRunId, { type: 'SCHEDULED', name: 'AwaitingRetry', state_details: { scheduled_time: at(0) } }, true)
  const res = await s.webhook(flowRunId, 'prefect.flow-run.AwaitingRetry')
  t.equal(res.statusCode, 202)
  t.not(res.json().dispatch_id, dispatchId, 'a new dispatch')
  t.equal(res.json().state, 'launched')
  t.equal(executionsOf(emulator, flowRunId).length, 2, 'one execution per attempt')
})

t.test('exhausted transient retries become retrying, and reconcile launches exactly once', async t => {
  const s = await stage(t, { env: { PUSHPOOL_LAUNCH_ATTEMPTS: '2', PUSHPOOL_RETRY_DELAY_SECONDS: '0' } })
  const flowRunId = await s.flowRun()
  // The second failure happens after Cloud Run created the execution: only its reply is lost.
  emulator.addFault({ method: 'RunJob', code: 14, times: 1 })
  t.teardown(() => emulator.clearFaults())
  const res = await s.webhook(flowRunId)
  t.equal(res.json().state, 'launched', 'first a plain retry succeeds')
  emulator.clearFaults()

  const next = await s.flowRun()
  emulator.addFault({ method: 'RunJob', code: 8, times: 1 })
  emulator.addFault({ method: 'RunJob', code: 14, times: 1, afterEffect: true })
  const retried = await s.webhook(next)
  t.equal(retried.json().state, 'retrying')
  t.equal(executionsOf(emulator, next).length, 1, 'the lost reply left one execution')
  emulator.clearFaults()
  // Due at once (delay 0): this process's retry timer and the pass race for it; whichever takes
  // it, the other finds it owned or launched. Passes go on until it is launched.
  let d = await s.detail(retried.json().dispatch_id)
  for (const giveUp = Date.now() + 30_000; d.dispatch.state !== 'launched' && Date.now() < giveUp; d = await s.detail(retried.json().dispatch_id)) {
    await s.reconcile()
    await sleep(200)
  }
  t.equal(d.dispatch.state, 'launched')
  t.equal(executionsOf(emulator, next).length, 1, 'the retry adopted it instead of running again')
  t.ok(d.events.some((e: { type: string, detail: string }) => e.type === 'launched' && /adopted execution/.test(e.detail)), 'the ledger says it was adopted')
  t.equal((await prefect.readFlowRun(next)).infrastructure_pid, executionsOf(emulator, next)[0].name)
  t.equal((await s.reconcile()).driven, 0, 'nothing left to drive')
})

t.test('crash detection: a failed execution crashes a run that is not terminal, with reason and logUri', async t => {
  const s = await stage(t)
  const exit = await launched(t, s)
  const timeout = await launched(t, s)
  emulator.finishExecution(exit.execution, { exitCode: 137 })
  emulator.finishExecution(timeout.execution, { timeout: true })
  const report = await s.reconcile()
  t.equal(report.crashed, 2)
  for (const [run, reason] of [[exit, /exited with an error|failed/], [timeout, /timeout was reached/]] as const) {
    const flowRun = await prefect.readFlowRun(run.flowRunId)
    t.equal(flowRun.state?.type, 'CRASHED')
    t.match(flowRun.state?.message, reason)
    t.match(flowRun.state?.message, /Logs: https:\/\/console\.cloud\.google\.com\/logs/)
    const d = await s.detail(run.dispatchId)
    t.equal(d.dispatch.state, 'crashed')
    t.ok(d.dispatch.log_uri)
    t.equal(d.links.logs, d.dispatch.log_uri)
  }
})

t.test('crash detection: an execution cancelled outside Prefect, and a missing image', async t => {
  const s = await stage(t)
  const outside = await launched(t, s)
  const { v2 } = await import('@google-cloud/run')
  const { emulatorClientOptions } = await import('../../src/emulator/index.ts')
  const executions = new v2.ExecutionsClient({ ...emulatorClientOptions(emulator.endpoint), projectId: 'proj-test' })
  t.teardown(() => executions.close())
  await executions.cancelExecution({ name: outside.execution })

  const s2 = await stage(t, { jobVariables: { image: 'us-docker.pkg.dev/p/r/does-not-exist:1' } })
  const missing = await launched(t, s2)
  await emulator.waitForExecution(missing.execution)
  await s.reconcile()
  await s2.reconcile()
  const cancelled = await prefect.readFlowRun(outside.flowRunId)
  t.equal(cancelled.state?.type, 'CRASHED')
  t.match(cancelled.state?.message, /cancelled outside Prefect/)
  const image = await prefect.readFlowRun(missing.flowRunId)
  t.equal(image.state?.type, 'CRASHED')
  t.match(image.state?.message, /execution failed/)
})

t.test('a run Prefect already holds as Completed, Failed or Cancelled is never overwritten', async t => {
  const s = await stage(t)
  const ends = ['COMPLETED', 'FAILED', 'CANCELLED'] as const
  const runs = []
  for (const type of ends) {
    const run = await launched(t, s)
    await prefect.setState(run.flowRunId, { type: 'RUNNING', name: 'Running' }, true)
    await prefect.setState(run.flowRunId, { type, name: type[0] + type.slice(1).toLowerCase() }, true)
    emulator.finishExecution(run.execution, { exitCode: 1 })
    runs.push(run)
  }
  const report = await s.reconcile()
  t.equal(report.crashed, 0)
  t.equal(report.finished, 3)
  for (const [i, run] of runs.entries()) {
    t.equal((await prefect.readFlowRun(run.flowRunId)).state?.type, ends[i], `${ends[i]} kept`)
    t.equal((await s.detail(run.dispatchId)).dispatch.state, ['succeeded', 'failed', 'cancelled'][i])
  }
})

t.test('retention: per-run jobs are deleted after the run unless keep_job is set', async t => {
  const s = await stage(t, { env: { PUSHPOOL_JOB_MODE: 'per-run' } })
  const kept = await stage(t, { env: { PUSHPOOL_JOB_MODE: 'per-run' }, jobVariables: { keep_job: true } })
  const gone = await launched(t, s)
  const stays = await launched(t, kept)
  const jobOf = (execution: string): string => execution.split('/executions/')[0]
  for (const run of [gone, stays]) emulator.finishExecution(run.execution, { exitCode: 0 })
  await s.reconcile()
  await kept.reconcile()
  const jobs = emulator.jobs().map(j => j.name)
  t.notOk(jobs.includes(jobOf(gone.execution)), 'the finished per-run job was deleted')
  t.ok(jobs.includes(jobOf(stays.execution)), 'keep_job kept its job')
  t.equal((await s.detail(gone.dispatchId)).dispatch.state, 'succeeded')
})

t.test('a Pending whose reply was lost is recognised as this dispatch\'s own on the next attempt', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun({ type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: at(60_000) } })
  const deferred = await s.webhook(flowRunId)
  t.equal(deferred.json().state, 'deferred')
  const dispatchId = deferred.json().dispatch_id
  // What a timed-out proposal that Prefect nevertheless applied leaves behind.
  await prefect.setState(flowRunId, { type: 'PENDING', name: 'Pending', message: `Claimed by pushpool dispatch ${dispatchId}` }, true)
  const redriven = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${dispatchId}/redrive`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(redriven.json().dispatch.state, 'launched', 'launched, not skipped')
  t.equal(executionsOf(emulator, flowRunId).length, 1)

  // Someone else's Pending is still someone else's.
  const other = await s.flowRun({ type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: at(60_000) } })
  const waiting = await s.webhook(other)
  await prefect.setState(other, { type: 'PENDING', name: 'Pending', message: 'claimed by a worker' }, true)
  const skipped = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${waiting.json().dispatch_id}/redrive`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(skipped.json().dispatch.state, 'skipped')
  t.equal(executionsOf(emulator, other).length, 0)
})

t.test('a Late state supersedes a deferred dispatch of the same attempt; one execution, one live dispatch', async t => {
  const s = await stage(t)
  const flowRunId = await s.flowRun({ type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: at(60_000) } })
  const first = await s.webhook(flowRunId)
  t.equal(first.json().state, 'deferred')
  await prefect.setState(flowRunId, { type: 'SCHEDULED', name: 'Late', state_details: { scheduled_time: at(-1000) } }, true)
  const late = await s.webhook(flowRunId, 'prefect.flow-run.Late')
  t.equal(late.json().state, 'launched')
  t.equal((await s.detail(first.json().dispatch_id)).dispatch.state, 'skipped', 'the stale deferred dispatch was superseded')
  const again = await s.webhook(flowRunId, 'prefect.flow-run.Late')
  t.equal(again.json().status, 'duplicate')
  await s.reconcile()
  t.equal(executionsOf(emulator, flowRunId).length, 1)
})

t.test('a run Prefect already holds as terminal is closed without reading its execution', async t => {
  const s = await stage(t)
  const run = await launched(t, s)
  t.match((await s.detail(run.dispatchId)).dispatch.log_uri, /^https:\/\/console\.cloud\.google\.com\/logs/, 'the log link is known from launch')
  await prefect.setState(run.flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  emulator.resetCalls()
  t.equal((await s.reconcile()).finished, 0, 'running: not closed')
  t.same(emulator.calls(), { GetExecution: 1 }, 'a run Prefect does not hold as terminal has its execution read (crash detection)')

  await prefect.setState(run.flowRunId, { type: 'COMPLETED', name: 'Completed' }, true)
  emulator.resetCalls()
  const report = await s.reconcile()
  t.equal(report.finished, 1)
  t.same(emulator.calls(), {}, 'no Cloud Run call: Prefect said Completed')
  const d = await s.detail(run.dispatchId)
  t.equal(d.dispatch.state, 'succeeded')
  t.match(d.dispatch.log_uri, /^https:\/\/console\.cloud\.google\.com\/logs/)
  t.match(d.events.at(-1).detail, /flow run ended Completed \(Prefect reported it; the execution was not read\)/)
  emulator.finishExecution(run.execution, { exitCode: 0 })
})

t.test('per-run mode waits for the execution to end before closing and deleting the job, even when Prefect says Completed', async t => {
  const s = await stage(t, { env: { PUSHPOOL_JOB_MODE: 'per-run' } })
  const run = await launched(t, s)
  const job = run.execution.split('/executions/')[0]
  await prefect.setState(run.flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  await prefect.setState(run.flowRunId, { type: 'COMPLETED', name: 'Completed' }, true)
  await s.reconcile()
  t.equal((await s.detail(run.dispatchId)).dispatch.state, 'launched', 'the execution still runs: the job cannot be deleted yet')
  t.ok(emulator.jobs().some(j => j.name === job))
  emulator.finishExecution(run.execution, { exitCode: 0 })
  const report = await s.reconcile()
  t.equal(report.finished, 1)
  t.equal(report.jobs_deleted, 1)
  t.equal((await s.detail(run.dispatchId)).dispatch.state, 'succeeded')
  t.notOk(emulator.jobs().some(j => j.name === job), 'deleted once the execution ended')
})

t.test('a launch stopped by the RunJob quota is retried when the quota\'s rest ends, without looking for an execution, and sends nothing while the location rests', async t => {
  const s = await stage(t, { env: { PUSHPOOL_LAUNCH_ATTEMPTS: '3', PUSHPOOL_RETRY_DELAY_SECONDS: '0' } })
  const warm = await launched(t, s)
  emulator.finishExecution(warm.execution, { exitCode: 0 })
  const flowRunId = await s.flowRun()
  emulator.setRateLimit('RunJob', 0)
  t.teardown(() => emulator.setRateLimit('RunJob', null))
  emulator.resetCalls()
  const res = await s.webhook(flowRunId)
  t.equal(res.json().state, 'retrying')
  t.same(emulator.calls(), { RunJob: 1 }, 'one RunJob, refused for quota; the pause spared the other attempts; no look')
  const waiting = (await s.detail(res.json().dispatch_id)).dispatch
  const restEnds = Date.parse(waiting.due_at)
  const rest = restEnds - Date.parse(waiting.updated_at)
  t.ok(rest > 2000 && rest <= 6250, `due when the quota's rest (5 s ± 25 %) ends, not at once despite a retry delay of 0 (${rest} ms after the refusal)`)
  emulator.setRateLimit('RunJob', null)
  // A drive inside the rest (here an operator's redrive) sends nothing; on a slow machine the
  // redrive may only reach the launcher once the rest is over, and then launches.
  emulator.resetCalls()
  const redrive = await s.app.inject({
    method: 'POST', url: `/v1/dispatches/${res.json().dispatch_id}/redrive`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }
  })
  if (redrive.json().dispatch.state === 'retrying') {
    t.equal(emulator.calls().RunJob ?? 0, 0, 'no RunJob while the location rests')
    emulator.resetCalls()
  } else {
    t.ok(Date.now() >= restEnds, `the redrive launched (${redrive.json().dispatch.state as string}) only after the rest ended`)
  }
  // Its timer drives it when the rest ends: no reconcile needed.
  let state = ''
  for (const giveUp = Date.now() + 30_000; state !== 'launched' && Date.now() < giveUp; await sleep(200)) {
    state = (await s.detail(res.json().dispatch_id)).dispatch.state
  }
  t.equal(state, 'launched')
  t.same(emulator.calls(), { RunJob: 1 }, 'launched with one RunJob and no ListExecutions')
  t.equal(executionsOf(emulator, flowRunId).length, 1)
})

t.test('a retried launch whose template no longer renders crashes the run, naming the cause', async t => {
  // The retry's own timer is 20 s away: reconcile's drive is the retry.
  const s = await stage(t, { env: { PUSHPOOL_LAUNCH_ATTEMPTS: '1', PUSHPOOL_RETRY_DELAY_SECONDS: '20' } })
  const flowRunId = await s.flowRun()
  emulator.addFault({ method: 'RunJob', code: 14, times: 1 })
  t.teardown(() => emulator.clearFaults())
  const res = await s.webhook(flowRunId)
  t.equal(res.json().state, 'retrying')
  emulator.clearFaults()
  // The pool's credentials block goes away before the launch is retried.
  const block = await prefect.request<{ id: string }>('GET', `/block_types/slug/gcp-credentials/block_documents/name/creds-${s.pool}`)
  await prefect.request('DELETE', `/block_documents/${block.id}`)
  await s.app.inject({ method: 'POST', url: `/v1/dispatches/${res.json().dispatch_id}/redrive`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  const d = await s.detail(res.json().dispatch_id)
  t.equal(d.dispatch.state, 'submit_failed', JSON.stringify(d.events.map((e: { type: string }) => e.type)))
  const run = await prefect.readFlowRun(flowRunId)
  t.equal(run.state?.type, 'CRASHED')
  t.match(run.state?.message ?? '', /block document/)
  t.equal(executionsOf(emulator, flowRunId).length, 0)
})

t.test('reconcile checks every launched dispatch, page after page, not only the oldest hundred', async t => {
  const s = await stage(t)
  // Launched records of runs Prefect does not know: each check reads the run (404) and then
  // fails to find the pool's clients, which the pass counts as checked and as an error.
  const count = 130
  for (let i = 0; i < count; i++) {
    const { dispatch } = await s.app.store.createDispatch({
      key: `ghost-${i}:s`, flowRunId: randomUUID(), flowRunName: null, pool: s.pool, deploymentId: null,
      state: 'launched', dueAt: null, receivedAt: new Date().toISOString(), detail: 'test'
    })
    await s.app.store.note(dispatch.id, 'launched', { executionName: `${s.pool}/executions/ghost-${i}`, logUri: 'https://logs' }, { detail: 'test' })
  }
  const report = await s.reconcile()
  t.equal(report.checked, count)
  t.equal(report.truncated, false)
})

t.test('reconcile and cancel reach an execution under the identity its launch recorded, without rendering again', async t => {
  const s = await stage(t)
  const run = await launched(t, s)
  const record = await s.app.store.getDispatch(run.dispatchId)
  t.match(record?.gcpIdentity, { source: 'credentials-block', blockDocumentId: /^[0-9a-f-]{36}$/ }, 'the block the key came from, by id')
  t.notMatch(JSON.stringify(record?.gcpIdentity), /private_key|BEGIN/, 'no key material in the ledger')
  const prefectCalls = async (route: string): Promise<number> => {
    const text = (await s.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).body
    const pattern = new RegExp(`pushpool_prefect_calls_total\\{route="${route.replace(/[{}/]/g, c => `\\${c}`)}",status="200"\\} (\\d+)`)
    return Number(pattern.exec(text)?.[1] ?? 0)
  }
  const deployments = await prefectCalls('GET /deployments/{id}')
  const blocks = await prefectCalls('GET /block_documents/{id}')
  await prefect.setState(run.flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  emulator.resetCalls()
  await s.reconcile()
  t.same(emulator.calls(), { GetExecution: 1 }, 'the running execution was read')
  t.equal(await prefectCalls('GET /deployments/{id}'), deployments, 'no render: the deployment was not read again')
  t.equal(await prefectCalls('GET /block_documents/{id}'), blocks + 1, 'the credentials block was read once, by its id')

  const cancel = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${run.dispatchId}/cancel`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(cancel.statusCode, 200)
  t.equal(await prefectCalls('GET /deployments/{id}'), deployments, 'cancelling did not render either')
  emulator.finishExecution(run.execution, { exitCode: 0 })
})
