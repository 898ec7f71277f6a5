// Pools Prefect made, end to end: a `cloud-run` (v1) pool from the installed prefect-gcp's default
// template, whose Knative-shaped job pushpool converts to a v2 Job, in both job modes; and a v2
// template edited as in Prefect's UI, with a custom placeholder set per deployment. Real Prefect
// server, pushpool's Cloud Run emulator, the app through inject().
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { build, webhookHeaders, webhookPayload, adminHeaders } from '../helper.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures, serviceAccountKey, type CloudRunPoolType } from '../harness/prefect-fixtures.ts'
import { executionsOf } from '../harness/scene.ts'
import { startEmulator, type Execution, type Job } from '../../src/emulator/index.ts'
import { CLOUD_RUN_JOB_ID, perRunJobName } from '../../src/jobconfig/names.ts'
import type { BaseJobTemplate, FlowRun } from '../../src/prefect/types.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const PROJECT = 'proj-v1'
const V1_JOB_VARIABLES = {
  image: 'us-docker.pkg.dev/proj-v1/flows/etl:7',
  cpu: '2000m',
  memory: '1Gi',
  timeout: 900,
  service_account_name: `runner@${PROJECT}.iam.gserviceaccount.com`,
  vpc_connector_name: `projects/${PROJECT}/locations/us-central1/connectors/flows`
}

interface Pool {
  name: string
  flowId: string
}

/** A pool of `type` from `template`, its credentials default referencing a GCP Credentials block. */
async function createPool (type: CloudRunPoolType, template: BaseJobTemplate): Promise<Pool> {
  const name = `${type}-${randomUUID().slice(0, 8)}`
  const blockId = await prefect.createGcpCredentialsBlock(`creds-${name}`, { service_account_info: serviceAccountKey(PROJECT), project: PROJECT })
  template.variables.properties!.credentials.default = { $ref: { block_document_id: blockId } }
  await prefect.createWorkPool(name, type, template)
  return { name, flowId: await prefect.createFlow(`flow-${name}`) }
}

function app (t: Test, pool: string, jobMode: 'reuse' | 'per-run'): Promise<FastifyInstance> {
  return build(t, {
    env: {
      PREFECT_API_URL: peers.apiUrl,
      PREFECT_API_AUTH_STRING: peers.authString,
      PUSHPOOL_POOLS: pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
      PUSHPOOL_JOB_MODE: jobMode
    }
  })
}

/** Sends the webhook for the run and returns the one execution it launched and that execution's job. */
async function launch (t: Test, server: FastifyInstance, flowRunId: string): Promise<{ execution: Execution, job: Job }> {
  const res = await server.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(), payload: webhookPayload(flowRunId) })
  const state = res.json().state as string
  // On failure, the dispatch's events say why.
  const why = state === 'launched' ? 'launched' : (await server.inject({ method: 'GET', url: `/v1/dispatches/${res.json().dispatch_id as string}`, headers: adminHeaders() })).body
  t.equal(state, 'launched', why)
  const executions = executionsOf(emulator, flowRunId)
  t.equal(executions.length, 1, 'exactly one execution')
  t.equal((await prefect.readFlowRun(flowRunId)).infrastructure_pid, executions[0].name)
  const jobName = executions[0].name.split('/executions/')[0]
  const job = emulator.jobs().find(j => j.name === jobName)
  if (job === undefined) throw new Error(`the emulator has no job ${jobName}`)
  return { execution: executions[0], job }
}

/** The v2 fields the v1 template's job variables must have become. */
function assertConvertedV1Job (t: Test, job: Job, execution: Execution, pool: string): void {
  t.equal(job.launchStage, 'BETA', 'the launch-stage annotation became launchStage')
  const task = job.template.template!
  t.equal(task.timeout, '900s', 'timeoutSeconds became timeout')
  t.equal(task.serviceAccount, V1_JOB_VARIABLES.service_account_name, 'serviceAccountName became serviceAccount')
  t.same(task.vpcAccess, { connector: V1_JOB_VARIABLES.vpc_connector_name }, 'the vpc-access-connector annotation became vpcAccess.connector')
  const container = task.containers![0]
  t.equal(container.image, V1_JOB_VARIABLES.image)
  t.same(container.resources?.limits, { cpu: '2000m', memory: '1Gi' }, 'limits kept; v1 requests have no v2 field')
  t.same(container.command, ['prefect', 'flow-run', 'execute'], 'the worker\'s default command')
  const annotations = JSON.stringify([job.annotations ?? {}, job.template.annotations ?? {}])
  t.notMatch(annotations, /run\.googleapis\.com/, 'no annotation the v2 API rejects')
  t.equal(job.labels?.['prefect-io-work-pool-name'], pool, 'Prefect\'s labels, sanitised for GCP, on the job')
  t.equal(job.template.labels?.['prefect-io-work-pool-name'], pool, 'and on its executions')
  t.equal(execution.template.timeout, '900s', 'the execution runs with the pool\'s timeout')
  const env = Object.fromEntries((execution.template.containers![0].env ?? []).map(v => [v.name, v.value]))
  t.equal(env.PREFECT_API_URL, peers.apiUrl)
}

t.test('a cloud-run (v1) pool from prefect-gcp\'s default template', async t => {
  const pool = await createPool('cloud-run', await prefect.defaultBaseJobTemplate('cloud-run'))
  const deploymentId = await prefect.createDeployment({ name: `nightly-${pool.name}`, flowId: pool.flowId, workPoolName: pool.name, jobVariables: V1_JOB_VARIABLES })

  t.test('reuse mode: one execution of a shared job with the converted fields', async t => {
    const server = await app(t, pool.name, 'reuse')
    const { id: flowRunId } = await prefect.createFlowRun(deploymentId)
    const { execution, job } = await launch(t, server, flowRunId)
    assertConvertedV1Job(t, job, execution, pool.name)
    const jobId = job.name.split('/').at(-1) as string
    t.match(jobId, CLOUD_RUN_JOB_ID)
    t.ok(jobId.startsWith(`nightly-${pool.name}-`), `the job id ${jobId} starts with the deployment's slug`)
    t.match(jobId, /-[0-9a-f]{12}$/, 'then the spec hash')
  })

  t.test('per-run mode: a job per run, named by Prefect\'s v2 rule', async t => {
    const server = await app(t, pool.name, 'per-run')
    const name = 'Nächtlicher Export — Zürich façade, Ночной отчёт 2024 and a tail long enough to be cut'
    const run = await prefect.request<FlowRun>('POST', `/deployments/${deploymentId}/create_flow_run`, { name })
    const { execution, job } = await launch(t, server, run.id)
    assertConvertedV1Job(t, job, execution, pool.name)
    const jobId = job.name.split('/').at(-1) as string
    t.match(jobId, /^[a-z][a-z0-9-]{0,54}-[0-9a-f]{7}$/, 'a slug of at most 55 characters, a dash, 7 hex digits')
    t.equal(jobId, perRunJobName(run.name, jobId.slice(-7)), `${jobId} is the slug of "${run.name}"`)
    t.ok(jobId.startsWith('nachtlicher-export-zurich-facade-nochnoi-otchet-2024-a'), 'transliterated as Prefect does')
  })
})

t.test('a v2 template edited in Prefect\'s UI: a custom placeholder in template.annotations', async t => {
  const template = await prefect.defaultBaseJobTemplate('cloud-run-v2')
  const jobBody = template.job_configuration.job_body as { template: Record<string, unknown> }
  jobBody.template.annotations = { 'example.com/owner': '{{ my_custom_annotation }}' }
  template.variables.properties!.my_custom_annotation = { type: 'string', title: 'Owner annotation', description: 'Who owns the runs of this deployment.' }
  const pool = await createPool('cloud-run-v2', template)
  const server = await app(t, pool.name, 'reuse')

  const owned = await prefect.createDeployment({ name: `owned-${pool.name}`, flowId: pool.flowId, workPoolName: pool.name, jobVariables: { my_custom_annotation: 'team-data' } })
  const { job } = await launch(t, server, (await prefect.createFlowRun(owned)).id)
  t.same(job.template.annotations, { 'example.com/owner': 'team-data' }, 'the deployment\'s value is on the created job')

  const unowned = await prefect.createDeployment({ name: `unowned-${pool.name}`, flowId: pool.flowId, workPoolName: pool.name })
  const { job: plain } = await launch(t, server, (await prefect.createFlowRun(unowned)).id)
  t.not(plain.name, job.name, 'a different spec is a different job')
  t.equal(plain.template.annotations?.['example.com/owner'], undefined, 'an unset placeholder removes its key, as Prefect does')
})
