// The true end to end: webhook → pushpool → Cloud Run (the emulator, which runs the container's
// command as a local process) → `prefect flow-run execute` → the flow run reaches Completed.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build, webhookHeaders, webhookPayload, deliverUntilPrefectAnswers } from '../helper.ts'
import { settledDispatch } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { createExampleDeployment, type ExampleFlow } from '../harness/example-flows.ts'
import { testVenv } from '../harness/test-env.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const venv = await testVenv()
const home = mkdtempSync(join(tmpdir(), 'pushpool-e2e-'))
const emulator = await startEmulator({
  executions: 'process',
  // The "container" is a local process: the venv's prefect stands in for the image's.
  processEnv: { PATH: `${venv.bin}:${process.env.PATH ?? ''}`, PREFECT_HOME: home, HOME: home }
})
t.teardown(async () => {
  await emulator.close()
  rmSync(home, { recursive: true, force: true })
})

async function runExample (t: Test, flow: ExampleFlow): Promise<{ flowRunId: string, execution: string }> {
  const pool = `e2e-${randomUUID().slice(0, 8)}`
  await prefect.createWorkPool(pool, 'cloud-run-v2', await prefect.defaultBaseJobTemplate('cloud-run-v2'))
  const { deploymentId } = await createExampleDeployment(prefect, { workPoolName: pool, flow, name: `${flow}-${pool}` })
  const app = await build(t, {
    env: {
      PREFECT_API_URL: peers.apiUrl,
      PREFECT_API_AUTH_STRING: peers.authString,
      PUSHPOOL_POOLS: pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
      PUSHPOOL_GCP_PROJECT: 'proj-e2e'
    }
  })
  const flowRunId = (await prefect.createFlowRun(deploymentId)).id
  // Delivered again while Prefect is too slow to read the run (503 PREFECT_UNAVAILABLE, nothing recorded).
  const res = await deliverUntilPrefectAnswers(
    () => app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(), payload: webhookPayload(flowRunId) }),
    async r => ({ status: r.statusCode, code: r.statusCode === 503 ? r.json().code : undefined }))
  t.equal(res.statusCode, 202)
  // A launch that outlasts the webhook's deadline goes on after the reply (claimed, launching), and
  // one Prefect was too slow for waits (deferred, retrying): its dispatch is followed until it rests.
  const dispatch = await settledDispatch(app, res.json().dispatch_id)
  t.equal(dispatch?.state, 'launched', JSON.stringify(dispatch))
  const run = await prefect.readFlowRun(flowRunId)
  t.equal(run.infrastructure_pid ?? dispatch?.execution_name, dispatch?.execution_name, 'Prefect names the execution the ledger does, if it names one')
  return { flowRunId, execution: dispatch?.execution_name ?? '' }
}

t.test('a flow run launched through pushpool runs in "Cloud Run" and reaches Completed', async t => {
  const { flowRunId, execution } = await runExample(t, 'hello')
  const run = await prefect.waitForFlowRunState(flowRunId, ['COMPLETED', 'FAILED', 'CRASHED'], 120_000)
  t.equal(run.state?.type, 'COMPLETED', emulator.logs(execution).slice(-2000))
  const done = await emulator.waitForExecution(execution)
  t.ok(done.completionTime, 'the execution finished')
  t.equal(done.succeededCount, 1, 'and succeeded')
})

t.test('a flow that raises ends Failed, reported by the engine itself', async t => {
  const { flowRunId, execution } = await runExample(t, 'fails')
  const run = await prefect.waitForFlowRunState(flowRunId, ['COMPLETED', 'FAILED', 'CRASHED'], 120_000)
  t.equal(run.state?.type, 'FAILED', emulator.logs(execution).slice(-2000))
})
