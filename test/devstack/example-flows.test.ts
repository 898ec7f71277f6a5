// The example flows run for real: a deployment made by createExampleDeployment, a flow run of it,
// and `prefect flow-run execute` on this machine, as a Cloud Run job would do it.

import { randomUUID } from 'node:crypto'
import t from 'tap'
import { createExampleDeployment, executeFlowRun } from '../harness/example-flows.ts'
import type { ExampleFlow } from '../harness/example-flows.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'

const server = await prefectServer()
const prefect = new PrefectFixtures(server.apiUrl, server.authString)
const poolName = `examples-${randomUUID().slice(0, 8)}`
await prefect.createWorkPool(poolName, 'cloud-run-v2', await prefect.defaultBaseJobTemplate('cloud-run-v2'))

async function runExample (flow: ExampleFlow) {
  const { deploymentId } = await createExampleDeployment(prefect, { workPoolName: poolName, flow, name: `${flow}-${randomUUID().slice(0, 8)}` })
  const { id } = await prefect.createFlowRun(deploymentId)
  const execution = await executeFlowRun({ apiUrl: server.apiUrl, authString: server.authString, flowRunId: id })
  return { ...execution, run: await prefect.readFlowRun(id) }
}

// Each execution is a Python process that takes several seconds to import Prefect; run both at once.
const [hello, fails] = await Promise.all([runExample('hello'), runExample('fails')])

t.test('hello completes', async (t) => {
  t.equal(hello.code, 0, hello.output)
  t.equal(hello.run.state?.type, 'COMPLETED')
  t.match(hello.output, /hello, pushpool/)
})

// Prefect 3.8's `flow-run execute` runs the flow in a child process and reports its final state to
// the API itself; its own exit status is 0 whether the flow completed or failed. So a Cloud Run
// execution that succeeded says nothing about the flow run's outcome; only Prefect's state does.
t.test('fails ends FAILED in Prefect, though the process exits 0', async (t) => {
  t.equal(fails.code, 0)
  t.equal(fails.run.state?.type, 'FAILED')
  t.match(fails.output, /this flow fails on purpose/)
})

t.test('the deployment carries what flow-run execute needs', async (t) => {
  const deployment = await prefect.readDeployment(hello.run.deployment_id!)
  t.equal(deployment.entrypoint, 'hello.py:hello')
  t.equal(deployment.path, null, 'no path: nothing is copied')
  t.match(deployment.pull_steps, [{ 'prefect.deployments.steps.set_working_directory': { directory: /examples\/flows$/ } }])
})
