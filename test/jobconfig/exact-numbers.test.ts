// Numbers JavaScript cannot hold, from Prefect's API to the job: a big integer or a whole float
// stored in a work pool template, a deployment's and a flow run's job variables and parameters
// reaches the job printed as Prefect's worker prints it.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { renderJobConfiguration } from '../../src/jobconfig/render.ts'
import { PrefectClient } from '../../src/prefect/client.ts'
import { isWholeFloat, stringifyExactJson, wholeFloat } from '../../src/prefect/exact-json.ts'
import type { Deployment, FlowRun, WorkPool } from '../../src/prefect/types.ts'
import { TemplateError } from '../../src/failures.ts'
import { prefectServer } from '../harness/prefect.ts'
import { deploymentlessRequest } from './render-request.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'

const peers = await prefectServer()
const fixtures = new PrefectFixtures(peers.apiUrl, peers.authString)
const client = new PrefectClient({ apiUrl: peers.apiUrl, authString: peers.authString, apiKey: null })
t.teardown(() => { client.close() })

/**
 * Writes with exact numbers (JSON.stringify has no bigints), retried as every fixture request is
 * while Prefect answers busy.
 */
function post<T> (path: string, body: unknown): Promise<T> {
  return fixtures.request<T>('POST', path, body, stringifyExactJson)
}

t.test('a pool, a deployment and a flow run holding big integers and whole floats render as Python prints them', async t => {
  const pool = `exact-${randomUUID().slice(0, 8)}`
  const template = await fixtures.defaultBaseJobTemplate('cloud-run-v2') as { job_configuration: Record<string, any>, variables: Record<string, any> }
  // Pinned in the template's env (the schema holds env values to strings, so job variables cannot).
  template.job_configuration.env = { POOL_BIG: 12345678901234567890n, POOL_WHOLE: wholeFloat(1) }
  template.variables.properties.shard = { type: 'integer', default: 340282366920938463463374607431768211456n }
  template.variables.properties.ratio = { type: 'number' }
  template.job_configuration.job_body.annotations = { shard: 'shard-{{ shard }}', ratio: 'ratio-{{ ratio }}' }
  await post('/work_pools/', { name: pool, type: 'cloud-run-v2', base_job_template: template })
  const flowId = await fixtures.createFlow('exact-numbers')
  const deployment = await post<{ id: string }>('/deployments/', {
    name: `exact-${pool}`, flow_id: flowId, work_pool_name: pool, job_variables: { ratio: wholeFloat(1e5) }
  })
  const run = await post<{ id: string }>(`/deployments/${deployment.id}/create_flow_run`, {
    parameters: { big: 18446744073709551617n },
    job_variables: { name: 'run-{{ ctx.flow_run.parameters.big }}', max_retries: wholeFloat(2), shard: -98765432109876543210n }
  })

  const workPool = await client.readWorkPool(pool) as WorkPool
  const readDeployment = await client.readDeployment(deployment.id) as Deployment
  const flowRun = await client.readFlowRun(run.id) as FlowRun
  t.equal((workPool.base_job_template.job_configuration.env as Record<string, unknown>).POOL_BIG, 12345678901234567890n, 'the pool template keeps its big integer')
  t.ok(isWholeFloat(readDeployment.job_variables?.ratio), 'the deployment keeps its whole float')
  t.equal(flowRun.job_variables?.shard, -98765432109876543210n)
  t.equal(flowRun.parameters?.big, 18446744073709551617n)
  t.equal(typeof flowRun.run_count, 'number', 'fields nothing renders stay plain JSON')

  const config = await renderJobConfiguration({
    workPool,
    deployment: readDeployment,
    flowRun,
    flow: { id: flowId, name: 'exact-numbers' },
    lookups: { readBlockDocument: async () => null, readBlockDocumentByName: async () => null, readVariable: async () => undefined },
    baseEnvironment: { PREFECT_API_URL: peers.apiUrl },
    workerName: 'pushpool',
    prefectVersion: '3.8.8',
    randomSuffix: () => 'abc1234'
  })
  const env = Object.fromEntries((config.job.template.template.containers[0].env ?? []).map(e => [e.name, e.value]))
  t.equal(env.POOL_BIG, '12345678901234567890')
  t.equal(env.POOL_WHOLE, '1.0')
  t.same(config.job.annotations, { shard: 'shard--98765432109876543210', ratio: 'ratio-100000.0' })
  t.equal(config.jobName, 'run-18446744073709551617-abc1234')
  t.equal(config.job.template.template.maxRetries, 2, 'a whole float in a numeric field reaches Cloud Run as its number')
})

t.test('an integer too large for Cloud Run in a numeric field is refused before launch, naming the field', async t => {
  const template = await fixtures.defaultBaseJobTemplate('cloud-run-v2') as { job_configuration: Record<string, any>, variables: Record<string, any> }
  template.variables.properties.tasks = { type: 'integer' }
  template.job_configuration.job_body.template.taskCount = '{{ tasks }}'
  await t.rejects(renderJobConfiguration(deploymentlessRequest(template as WorkPool['base_job_template'], { tasks: 12345678901234567890n })), new TemplateError('job_configuration.job_body.template.taskCount',
    'job_configuration.job_body.template.taskCount is the integer 12345678901234567890, larger than any number Cloud Run accepts; fix the job variable or the work pool\'s base job template that sets it.'))
})
