// A work pool template that cannot render, end to end: a real Prefect server, pushpool's Cloud Run
// emulator and the app through inject(). Each case must crash the flow run with a message that
// names the field and the fix, record that message on the dispatch, and launch nothing.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { build, webhookHeaders, webhookPayload, adminHeaders } from '../helper.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures, PrefectRequestError, serviceAccountKey } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import type { BaseJobTemplate, FlowRun } from '../../src/prefect/types.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
// This file's own emulator: no case may reach Cloud Run, so it must stay empty throughout.
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const CRASH_PREFIX = 'Failed to submit flow run to infrastructure: '

interface Scene {
  app: FastifyInstance
  pool: string
  flowId: string
  deploymentId: string
  credentialsBlockId: string
  /** The credentials block's private key: it must never reach a message. */
  privateKey: string
  template: BaseJobTemplate
}

interface SceneOptions {
  editTemplate?: (template: BaseJobTemplate) => void
  jobVariables?: Record<string, unknown>
}

/** A served cloud-run-v2 pool made from prefect-gcp's default template, credentials from a block. */
async function scene (t: Test, options: SceneOptions = {}): Promise<Scene> {
  const pool = `errors-${randomUUID().slice(0, 8)}`
  const key = serviceAccountKey('proj-errors')
  const credentialsBlockId = await prefect.createGcpCredentialsBlock(`creds-${pool}`, { service_account_info: key, project: 'proj-errors' })
  const template = await prefect.defaultBaseJobTemplate('cloud-run-v2')
  template.variables.properties!.credentials.default = { $ref: { block_document_id: credentialsBlockId } }
  options.editTemplate?.(template)
  await prefect.createWorkPool(pool, 'cloud-run-v2', template)
  const flowId = await prefect.createFlow(`flow-${pool}`)
  const deploymentId = await prefect.createDeployment({ name: `dep-${pool}`, flowId, workPoolName: pool, jobVariables: options.jobVariables ?? {} })
  const app = await build(t, {
    env: {
      PREFECT_API_URL: peers.apiUrl,
      PREFECT_API_AUTH_STRING: peers.authString,
      PUSHPOOL_POOLS: pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint
    }
  })
  return { app, pool, flowId, deploymentId, credentialsBlockId, privateKey: key.private_key, template }
}

/** The HTTP status with which Prefect refuses a request (0 if it accepts it). */
async function refusedWith (request: Promise<unknown>): Promise<number> {
  try {
    await request
  } catch (error) {
    if (error instanceof PrefectRequestError) return error.status
    throw error
  }
  return 0
}

/**
 * The webhook for `flowRunId` must crash it with a message matching every pattern, keep that message
 * on the dispatch and in its admin detail, reveal no secret, and leave Cloud Run untouched.
 */
async function expectCrashed (t: Test, s: Scene, flowRunId: string, patterns: RegExp[]): Promise<void> {
  const res = await s.app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(), payload: webhookPayload(flowRunId) })
  t.equal(res.statusCode, 202)
  t.equal(res.json().state, 'submit_failed')

  const run = await prefect.readFlowRun(flowRunId)
  t.equal(run.state?.type, 'CRASHED', 'the flow run is Crashed')
  const stateMessage = run.state?.message ?? ''
  t.ok(stateMessage.startsWith(CRASH_PREFIX), stateMessage)
  const message = stateMessage.slice(CRASH_PREFIX.length)
  for (const pattern of patterns) t.match(message, pattern)

  const detail = (await s.app.inject({ method: 'GET', url: `/v1/dispatches/${res.json().dispatch_id as string}`, headers: adminHeaders() })).json()
  t.equal(detail.dispatch.state, 'submit_failed')
  t.equal(detail.dispatch.error, message, 'the dispatch keeps the message')
  t.equal(detail.events.at(-1).detail, stateMessage, 'the admin detail shows it')
  t.equal(detail.dispatch.execution_name, null)

  const everything = JSON.stringify({ stateMessage, detail })
  for (const secret of [s.privateKey, 'PRIVATE KEY', peers.authString]) t.notOk(everything.includes(secret), 'no secret in the message or the detail')

  t.same(emulator.jobs(), [], 'no job')
  t.same(emulator.executions(), [], 'no execution')
  const calls = emulator.calls()
  t.same([calls.CreateJob ?? 0, calls.RunJob ?? 0], [0, 0], 'Cloud Run was never asked to create or run a job')
}

t.test('a $ref default naming a block document that was deleted', async t => {
  const s = await scene(t)
  const { id: flowRunId } = await prefect.createFlowRun(s.deploymentId)
  // Prefect refuses a pool whose default names a missing block, and new runs of it, so the block
  // goes missing after the run was created, as when someone deletes it.
  await prefect.request('DELETE', `/block_documents/${s.credentialsBlockId}`)
  t.equal(await refusedWith(prefect.createFlowRun(s.deploymentId)), 404, 'Prefect itself now refuses new runs')
  await expectCrashed(t, s, flowRunId, [/'credentials'/, new RegExp(s.credentialsBlockId), /edit the work pool/])
})

t.test('a {{ prefect.blocks.<type>.<name> }} placeholder naming a block that does not exist', async t => {
  const s = await scene(t, { jobVariables: { env: { DB_PASSWORD: '{{ prefect.blocks.secret.missing-db-password }}' } } })
  const { id: flowRunId } = await prefect.createFlowRun(s.deploymentId)
  await expectCrashed(t, s, flowRunId, [/env\.DB_PASSWORD/, /missing-db-password/, /create/i])
})

t.test('a job body with no containers', async t => {
  const s = await scene(t, {
    editTemplate: template => {
      const jobBody = template.job_configuration.job_body as { template: { template: { containers: unknown[] } } }
      jobBody.template.template.containers = []
    }
  })
  const { id: flowRunId } = await prefect.createFlowRun(s.deploymentId)
  await expectCrashed(t, s, flowRunId, [/containers\[0\]/, /add one/])
})

t.test('memory that breaks the schema, set through the one route Prefect does not check', async t => {
  const s = await scene(t)
  const bad = { memory: '512MB' }
  t.equal(await refusedWith(prefect.createDeployment({ name: `dep2-${s.pool}`, flowId: s.flowId, workPoolName: s.pool, jobVariables: bad })), 422,
    'Prefect refuses it on a deployment')
  t.equal(await refusedWith(prefect.createFlowRun(s.deploymentId, { jobVariables: bad })), 422, 'and on a run created from the deployment')
  // POST /flow_runs/ does not check job variables against the pool's schema.
  const run = await prefect.request<FlowRun>('POST', '/flow_runs/', {
    flow_id: s.flowId,
    deployment_id: s.deploymentId,
    work_pool_name: s.pool,
    job_variables: bad,
    state: { type: 'SCHEDULED', name: 'Scheduled' }
  })
  await expectCrashed(t, s, run.id, [/'memory'/, /512MB/, /set it like '512Mi'/])
})

t.test('cpu that breaks a schema the pool was given after the run was created', async t => {
  // prefect-gcp's v2 schema has no pattern for cpu, so the deployment and its run are accepted.
  const s = await scene(t, { jobVariables: { cpu: '1.5' } })
  const { id: flowRunId } = await prefect.createFlowRun(s.deploymentId)
  const edited = structuredClone(s.template)
  Object.assign(edited.variables.properties!.cpu, { pattern: '^(\\d*000)m$', examples: ['1000m'] })
  await prefect.request('PATCH', `/work_pools/${s.pool}`, { base_job_template: edited })
  t.equal(await refusedWith(prefect.createFlowRun(s.deploymentId)), 422, 'Prefect refuses new runs of it now')
  await expectCrashed(t, s, flowRunId, [/'cpu'/, /deployment/, /set it like '1000m'/])
})

t.test('a string command that shell rules cannot split', async t => {
  const s = await scene(t, { jobVariables: { command: 'python -c \'print("unbalanced)' } })
  const { id: flowRunId } = await prefect.createFlowRun(s.deploymentId)
  await expectCrashed(t, s, flowRunId, [/command/, /No closing quotation/, /balance its quotes or give it as a list/])
})
