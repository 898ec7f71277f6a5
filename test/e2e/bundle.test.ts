// An infrastructure-bound flow end to end: a flow submitted to a work pool without a deployment
// (prefect-gcp's @cloud_run decorator, `submit_to_work_pool`) is bundled and uploaded by Prefect's
// own client through the pool's storage configuration; pushpool launches the run as Prefect's
// worker would, with the pool's bundle execution step as the job's command; the "container" (the
// emulator's local process) fetches the bundle, runs the flow, and the run reaches Completed.
// The storage is a directory on this machine (test/e2e/bundle-storage), which Prefect's server
// takes like any other storage configuration: it stores the steps and never runs them.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build, webhookHeaders, webhookPayload } from '../helper.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { testVenv } from '../harness/test-env.ts'
import { shlexSplit } from '../../src/jobconfig/shlex.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const STORAGE_MODULES = fileURLToPath(new URL('./bundle-storage', import.meta.url))
const SUBMIT = join(STORAGE_MODULES, 'submit_flow.py')

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const venv = await testVenv()
const scratch = mkdtempSync(join(tmpdir(), 'pushpool-bundle-'))
const bundles = join(scratch, 'bundles')
// Both the submitting process and the "container" import the storage modules.
const pythonEnv = { PATH: `${venv.bin}:${process.env.PATH ?? ''}`, PYTHONPATH: STORAGE_MODULES, PREFECT_HOME: join(scratch, 'home'), HOME: join(scratch, 'home') }
const emulator = await startEmulator({ executions: 'process', processEnv: pythonEnv })
t.teardown(async () => {
  await emulator.close()
  rmSync(scratch, { recursive: true, force: true })
})

t.test('a flow submitted to the pool runs from its bundle and reaches Completed', async t => {
  const pool = `bundle-${randomUUID().slice(0, 8)}`
  await prefect.createWorkPool(pool, 'cloud-run-v2', await prefect.defaultBaseJobTemplate('cloud-run-v2'))
  const step = (module: string): Record<string, unknown> => ({ [`pushpool_test_bundles.${module}`]: { directory: bundles } })
  await prefect.request('PATCH', `/work_pools/${pool}`, { storage_configuration: { bundle_upload_step: step('upload'), bundle_execution_step: step('execute') } })

  const submitted = spawnSync(venv.python, [SUBMIT, pool, venv.python], {
    cwd: scratch,
    encoding: 'utf8',
    env: { ...pythonEnv, PREFECT_API_URL: peers.apiUrl, PREFECT_API_AUTH_STRING: peers.authString }
  })
  t.equal(submitted.status, 0, 'the flow is submitted to the pool', { stderr: submitted.stderr.slice(-3000) })
  const flowRunId = submitted.stdout.trim().split('\n').at(-1) ?? ''
  const submittedRun = await prefect.readFlowRun(flowRunId)
  t.equal(submittedRun.deployment_id, null, 'the run has no deployment')
  t.equal(submittedRun.state?.type, 'SCHEDULED', 'Prefect schedules it once the bundle is uploaded')
  t.same(readdirSync(bundles).length, 1, 'the bundle was uploaded through the pool\'s upload step')
  const command = String(submittedRun.job_variables?.command)
  t.match(command, /-m pushpool_test_bundles\.execute --directory .* --key [0-9a-f-]{36}$/, 'the execution step is the run\'s command job variable')

  const app = await build(t, {
    env: {
      PREFECT_API_URL: peers.apiUrl,
      PREFECT_API_AUTH_STRING: peers.authString,
      PUSHPOOL_POOLS: pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
      PUSHPOOL_GCP_PROJECT: 'proj-bundle'
    }
  })
  const res = await app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(), payload: webhookPayload(flowRunId) })
  t.equal(res.statusCode, 202)
  // A webhook answers within its time budget; on a busy machine the launch may still be under way.
  t.match(res.json().state, /^launch(ed|ing)$/, 'pushpool launches the run')

  const run = await prefect.waitForFlowRunState(flowRunId, ['COMPLETED', 'FAILED', 'CRASHED'], 120_000)
  const execution = run.infrastructure_pid ?? ''
  t.equal(run.state?.type, 'COMPLETED', 'the flow run completes', { logs: emulator.logs(execution).slice(-3000) })
  t.match(emulator.logs(execution), /2 \+ 3 = 5/, 'the flow in the bundle is what ran')
  const job = emulator.jobs().find(candidate => execution.startsWith(`${candidate.name}/`))
  t.same(job?.template?.template?.containers?.[0].command, shlexSplit(command), 'the job runs the bundle\'s execute command, split as Prefect\'s worker splits it')
})
