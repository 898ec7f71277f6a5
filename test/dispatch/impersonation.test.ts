// Keyless launches end to end: pushpool's own identity comes from the emulator's metadata server
// (google-auth-library's Compute client through GCE_METADATA_HOST, as on Cloud Run), and the account
// a pool or deployment names in impersonate_service_account is impersonated through the emulator's
// IAM Credentials API with the real Impersonated client. The emulator records who made each Cloud
// Run call, so the job's and the execution's `creator` say which account launched the run.
import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { adminHeaders } from '../helper.ts'
import { scene, executionsOf, type Scene, type SceneOptions } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const PUSHPOOL = 'pushpool@proj-test.iam.gserviceaccount.com'
const LAUNCHER = 'pushpool-launcher@proj-test.iam.gserviceaccount.com'
const TEAM = 'team-b-launcher@proj-test.iam.gserviceaccount.com'
const UNGRANTED = 'nobody-granted@proj-test.iam.gserviceaccount.com'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({
  executions: 'hold',
  metadataServer: { serviceAccount: PUSHPOOL },
  tokenCreators: { [LAUNCHER]: [`serviceAccount:${PUSHPOOL}`], [TEAM]: [`serviceAccount:${PUSHPOOL}`] }
})
t.teardown(() => emulator.close())
// pushpool's own identity: gcp-metadata reads this on every request (this file runs in its own process).
process.env.GCE_METADATA_HOST = emulator.httpEndpoint

// Impersonated's construction warning is plain text: pushpool must keep it off stderr.
const warnings: string[] = []
const warn = console.warn
console.warn = (...args: unknown[]) => { warnings.push(args.map(String).join(' ')); warn(...args) }
t.teardown(() => { console.warn = warn })

/** A keyless pool that names `poolDefault` (or nothing) for pushpool to impersonate. */
const stage = (t: Test, poolDefault: string | null, options: SceneOptions = {}): Promise<Scene> => scene(t, prefect, peers, emulator, {
  ...options,
  pool: {
    keyless: true,
    ...(poolDefault === null ? {} : { variables: { impersonate_service_account: { type: 'string', default: poolDefault } } })
  },
  env: { PUSHPOOL_GCP_PROJECT: 'proj-test', PUSHPOOL_IAM_CREDENTIALS_ENDPOINT: emulator.httpUrl, ...options.env }
})

/** The launched execution of a run, and its job, as the emulator stores them. */
function launchedOf (flowRunId: string): { creator: string | undefined, jobCreator: string | undefined } {
  const [execution] = executionsOf(emulator, flowRunId)
  const job = emulator.jobs().find(j => execution.name.startsWith(`${j.name}/`))
  return { creator: execution.creator, jobCreator: job?.creator }
}

/**
 * The dispatch's detail once its drive has come to rest. A webhook answers by its deadline (8 s)
 * whatever the drive's progress, and the drive goes on: on a loaded machine the first launch of a
 * process (its clients and tokens made cold) can outlast it, so the answer may still say `launching`.
 */
async function atRest (s: Scene, dispatchId: string): Promise<any> {
  for (const giveUp = Date.now() + 60_000; ;) {
    const d = await s.detail(dispatchId)
    if (!['received', 'claimed', 'launching'].includes(d.dispatch.state) || Date.now() > giveUp) return d
    await sleep(200)
  }
}

const CLOUD_RUN_METHODS = ['CreateJob', 'GetJob', 'RunJob', 'ListExecutions', 'GetExecution', 'CancelExecution', 'DeleteJob']

t.test('a pool that names an account launches as it; one token per identity lifetime, not per launch', async t => {
  const logLines: string[] = []
  const s = await stage(t, LAUNCHER, { logLines, env: { LOG_LEVEL: 'trace' } })
  emulator.resetCalls()
  const first = await s.flowRun()
  const res = await s.webhook(first)
  const d = await atRest(s, res.json().dispatch_id)
  t.equal(d.dispatch.state, 'launched', JSON.stringify(d.events))
  t.same(launchedOf(first), { creator: LAUNCHER, jobCreator: LAUNCHER }, 'the job and the execution were created by the impersonated account')
  const second = await s.flowRun()
  t.equal((await atRest(s, (await s.webhook(second)).json().dispatch_id)).dispatch.state, 'launched')
  t.equal(launchedOf(second).creator, LAUNCHER)
  const calls = emulator.calls()
  t.equal(calls.GenerateAccessToken, 1, 'one GenerateAccessToken for two launches: the token is reused until it nears expiry')
  t.equal(calls.MetadataAccessToken, 1, 'pushpool\'s own token once too')
  const callers = emulator.callers()
  t.same([...new Set(CLOUD_RUN_METHODS.flatMap(method => callers[method] ?? []))], [LAUNCHER], 'every Cloud Run call was made as the account')

  const record = await s.app.store.getDispatch(res.json().dispatch_id)
  t.same(record?.gcpIdentity, { source: 'adc', impersonate: LAUNCHER }, 'the ledger names the account with its source')
  t.same(warnings.filter(w => w.includes('Impersonated')), [], 'no plain-text warning from the Impersonated constructor')
  const detail = JSON.stringify(await s.detail(res.json().dispatch_id))
  t.ok(logLines.length > 10, 'trace-level logs were written')
  t.notMatch(`${logLines.join('\n')}\n${detail}`, /ya29\./, 'no access token in the logs or the admin view')
})

t.test('a deployment\'s job variable overrides the pool\'s account, and a flow run\'s null opts out', async t => {
  const s = await stage(t, LAUNCHER, { jobVariables: { impersonate_service_account: TEAM } })
  const byDeployment = await s.flowRun()
  t.equal((await atRest(s, (await s.webhook(byDeployment)).json().dispatch_id)).dispatch.state, 'launched')
  t.equal(launchedOf(byDeployment).creator, TEAM, 'the deployment\'s account')

  const optedOut = (await prefect.createFlowRun(s.deploymentId, { jobVariables: { impersonate_service_account: null } })).id
  t.equal((await atRest(s, (await s.webhook(optedOut)).json().dispatch_id)).dispatch.state, 'launched')
  t.equal(launchedOf(optedOut).creator, PUSHPOOL, 'launched as pushpool itself')
})

t.test('without a Token Creator grant the run crashes before any Cloud Run call, naming the grant', async t => {
  const s = await stage(t, UNGRANTED)
  const flowRunId = await s.flowRun()
  emulator.resetCalls()
  const res = await s.webhook(flowRunId)
  const d = await atRest(s, res.json().dispatch_id)
  t.equal(d.dispatch.state, 'submit_failed', JSON.stringify(d.events))
  const run = await prefect.readFlowRun(flowRunId)
  t.equal(run.state?.type, 'CRASHED')
  const message = run.state?.message ?? ''
  t.match(message, /^Failed to submit flow run to infrastructure: /)
  t.match(message, `grant roles/iam.serviceAccountTokenCreator on ${UNGRANTED} to ${PUSHPOOL}`)
  t.match(message, /PERMISSION_DENIED/)
  t.notMatch(message, /ya29\./, 'no token in the message')
  const calls = emulator.calls()
  t.same(CLOUD_RUN_METHODS.filter(method => calls[method] !== undefined), [], 'no Cloud Run call was made')
  t.equal(calls.GenerateAccessToken, 1)
})

t.test('IAM Credentials unavailable: the launch is retried, then launched by reconcile', async t => {
  // The retry is due in a minute, so this process's own retry timer stays out of the way; the
  // prefetch window is longer, so reconcile finds it due now and is the only one to drive it.
  const s = await stage(t, LAUNCHER, { env: { PUSHPOOL_RETRY_DELAY_SECONDS: '60', PUSHPOOL_PREFETCH_SECONDS: '120' } })
  const flowRunId = await s.flowRun()
  // The client retries a 503 three times itself; the fourth answer ends the attempt.
  emulator.addFault({ method: 'GenerateAccessToken', code: 14, times: 4 })
  t.teardown(() => emulator.clearFaults())
  const res = await s.webhook(flowRunId)
  const id = res.json().dispatch_id
  let d = await atRest(s, id)
  t.equal(d.dispatch.state, 'retrying', JSON.stringify(d.events))
  t.match(d.dispatch.error, `pushpool could not impersonate ${LAUNCHER}`)
  t.equal(executionsOf(emulator, flowRunId).length, 0)
  // A pass that comes while the webhook's drive still lets go of its lease leaves it to the next one.
  let driven = 0
  for (const giveUp = Date.now() + 30_000; d.dispatch.state === 'retrying' && Date.now() < giveUp; d = await s.detail(id)) {
    driven += Number((await s.reconcile()).driven)
    await sleep(200)
  }
  t.equal(d.dispatch.state, 'launched', JSON.stringify(d.events))
  t.equal(driven, 1, 'reconcile launched it, once')
  t.equal(launchedOf(flowRunId).creator, LAUNCHER)
})

t.test('reconcile and cancel reach an impersonated launch as the same account, without rendering', async t => {
  const s = await stage(t, LAUNCHER, { env: { PUSHPOOL_CANCEL_GRACE_SECONDS: '0' } })
  const flowRunId = await s.flowRun()
  const res = await s.webhook(flowRunId)
  t.equal((await atRest(s, res.json().dispatch_id)).dispatch.state, 'launched')
  // Were the template rendered again, the pool's new default would be impersonated instead.
  const pool = await prefect.readWorkPool(s.pool)
  pool.base_job_template.variables.properties!.impersonate_service_account.default = TEAM
  await prefect.request('PATCH', `/work_pools/${encodeURIComponent(s.pool)}`, { base_job_template: pool.base_job_template })
  await prefect.setState(flowRunId, { type: 'RUNNING', name: 'Running' }, true)
  emulator.resetCalls()
  await s.reconcile()
  t.same(emulator.callers().GetExecution, [LAUNCHER], 'reconcile read the execution as the account that launched it')
  // A started run gets its grace period (none here), then reconcile cancels the execution.
  const cancel = await s.app.inject({ method: 'POST', url: `/v1/dispatches/${res.json().dispatch_id}/cancel`, headers: adminHeaders() })
  t.equal(cancel.statusCode, 200, cancel.body)
  t.equal((await s.reconcile()).cancelled, 1)
  t.same(emulator.callers().CancelExecution, [LAUNCHER], 'and cancelled it as that account')
})
