// renderJobConfiguration: the contract other code relies on, and the TemplateErrors it raises.
import t from 'tap'
import { TemplateError } from '../../src/failures.ts'
import { renderJobConfiguration } from '../../src/jobconfig/render.ts'
import type { PrefectLookups, RenderRequest } from '../../src/jobconfig/types.ts'
import type { BaseJobTemplate, BlockDocument, Deployment, FlowRun } from '../../src/prefect/types.ts'
import { loadTemplate } from '../conformance/fixtures.ts'

const CREDENTIALS: BlockDocument = {
  id: '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b',
  name: 'prod',
  data: { service_account_info: { type: 'service_account', private_key: 'KEY-MATERIAL' }, project: 'acme-prod' },
  block_type: { slug: 'gcp-credentials', name: 'GCP Credentials' }
}

const lookups: PrefectLookups = {
  readBlockDocument: async (id) => id === CREDENTIALS.id ? CREDENTIALS : null,
  readBlockDocumentByName: async (slug, name) => slug === 'gcp-credentials' && name === 'prod' ? CREDENTIALS : null,
  readVariable: async () => undefined
}

function request (template: BaseJobTemplate, options: { type?: string, deployment?: Record<string, unknown>, flowRun?: Record<string, unknown> } = {}): RenderRequest {
  const deployment: Deployment = { id: 'd0000000-0000-4000-8000-000000000000', name: 'nightly', flow_id: 'f', job_variables: options.deployment ?? {}, work_pool_name: 'pool', work_queue_name: 'default' }
  const flowRun = { id: 'fr000000-0000-4000-8000-000000000000', name: 'crimson-wombat', flow_id: 'f', deployment_id: deployment.id, job_variables: options.flowRun ?? {} } as unknown as FlowRun
  return {
    workPool: { id: 'p0000000-0000-4000-8000-000000000000', name: 'pool', type: options.type ?? 'cloud-run-v2', base_job_template: template, is_paused: false, concurrency_limit: null },
    deployment,
    flowRun,
    flow: { id: 'f', name: 'etl-flow' },
    lookups,
    baseEnvironment: { PREFECT_API_URL: 'https://prefect.acme.internal/api', PREFECT_API_AUTH_STRING: 'admin:pa55word' },
    workerName: 'pushpool',
    prefectVersion: '3.8.8',
    randomSuffix: () => 'abc1234'
  }
}

const v2 = (): BaseJobTemplate => loadTemplate('cloud-run-v2.default')
const v1 = (): BaseJobTemplate => loadTemplate('cloud-run.default')

t.test('a cloud-run-v2 pool renders to the v2 job Prefect\'s worker sends', async (t) => {
  const config = await renderJobConfiguration(request(v2(), { deployment: { credentials: { $ref: { block_document_id: CREDENTIALS.id } }, timeout: 1200 } }))
  t.equal(config.kind, 'cloud-run-v2')
  t.equal(config.region, 'us-central1')
  t.same(config.credentials, CREDENTIALS.data)
  t.equal(config.keepJob, false)
  t.equal(config.timeoutSeconds, 1200)
  t.equal(config.jobName, 'crimson-wombat-abc1234')
  t.equal(config.job.client, 'prefect')
  t.equal(config.job.template.template.timeout, '1200s')
  const container = config.job.template.template.containers[0]
  t.equal(container.image, 'prefecthq/prefect:3-latest')
  t.same(container.command, ['prefect', 'flow-run', 'execute'])
  t.same(container.env?.find(env => env.name === 'PREFECT__FLOW_RUN_ID'), { name: 'PREFECT__FLOW_RUN_ID', value: 'fr000000-0000-4000-8000-000000000000' })
  t.match(config.warnings, [/^PREFECT_API_AUTH_STRING is provided as a plaintext environment variable/])
})

t.test('the per-run suffix is 7 random hex digits by default', async (t) => {
  const withoutSuffix = { ...request(v2()), randomSuffix: undefined }
  const names = await Promise.all([1, 2].map(async () => (await renderJobConfiguration(withoutSuffix)).jobName))
  for (const name of names) t.match(name, /^crimson-wombat-[0-9a-f]{7}$/)
  t.not(names[0], names[1])
})

t.test('a cloud-run (v1) pool is rendered by the v1 worker\'s rules, then converted to v2', async (t) => {
  const config = await renderJobConfiguration(request(v1(), {
    type: 'cloud-run',
    deployment: { cpu: '2000m', memory: '1Gi', timeout: 1800, vpc_connector_name: 'etl', service_account_name: 'sa@acme.iam.gserviceaccount.com', prefect_api_auth_string_secret: { secret: 'auth', version: '2' } }
  }))
  t.equal(config.kind, 'cloud-run')
  t.equal(config.timeoutSeconds, 1800)
  t.equal(config.jobName, 'crimson-wombat-abc1234')
  t.equal(config.job.launchStage, 'BETA')
  const task = config.job.template.template
  t.equal(task.timeout, '1800s')
  t.equal(task.serviceAccount, 'sa@acme.iam.gserviceaccount.com')
  t.same(task.vpcAccess, { connector: 'etl' })
  t.same(task.containers[0].resources, { limits: { cpu: '2000m', memory: '1Gi' } })
  t.same(task.containers[0].env?.filter(env => env.name === 'PREFECT_API_AUTH_STRING'), [
    { name: 'PREFECT_API_AUTH_STRING', valueSource: { secretKeyRef: { secret: 'auth', version: '2' } } }
  ])
  t.equal(config.job.labels?.['prefect-io-flow-run-name'], 'crimson-wombat')
  t.equal(Object.hasOwn(config.job, 'metadata'), false)
})

t.test('{{ $NAME }} renders as "" and says so, whatever pushpool\'s environment holds', async (t) => {
  process.env.PUSHPOOL_JOB_CONFIG_TEST_SECRET = 'do-not-leak'
  t.teardown(() => { delete process.env.PUSHPOOL_JOB_CONFIG_TEST_SECRET })
  const template = v2()
  ;(template.job_configuration.job_body as Record<string, unknown>).annotations = { leak: 'x={{ $PUSHPOOL_JOB_CONFIG_TEST_SECRET }}' }
  const config = await renderJobConfiguration(request(template))
  t.same(config.job.annotations, { leak: 'x=' })
  t.match(config.warnings, [/\{\{ \$PUSHPOOL_JOB_CONFIG_TEST_SECRET \}\} reads a Prefect worker's own environment/])
  t.notMatch(JSON.stringify(config), /do-not-leak/)
})

t.test('job variables that break the pool\'s schema name the variable and the fix', async (t) => {
  await t.rejects(renderJobConfiguration(request(v2(), { deployment: { memory: '512' } })), {
    constructor: TemplateError,
    field: 'variables.memory',
    message: 'job variable \'memory\' = \'512\' (set by the deployment\'s job_variables) does not match ^\\d+(?:G|Gi|M|Mi)$; set it like \'512Mi\'.'
  })
  await t.rejects(renderJobConfiguration(request(v1(), { type: 'cloud-run', flowRun: { cpu: '2' } })), {
    constructor: TemplateError,
    field: 'variables.cpu',
    message: 'job variable \'cpu\' = \'2\' (set by the flow run\'s job_variables) does not match ^(\\d*000)m$; set it like \'1000m\'.'
  })
  await t.rejects(renderJobConfiguration(request(v2(), { deployment: { timeout: 0 } })), { field: 'variables.timeout', message: /= 0 .* must be > 0; raise it\./ })
  await t.rejects(renderJobConfiguration(request(v2(), { flowRun: { timeout: 700000 } })), { field: 'variables.timeout', message: /= 700000 .* must be <= 604800; lower it\./ })
  await t.rejects(renderJobConfiguration(request(v2(), { deployment: { launch_stage: 'SOMEDAY' } })), { field: 'variables.launch_stage', message: /is not one of ALPHA, BETA/ })
  await t.rejects(renderJobConfiguration(request(v2(), { deployment: { max_retries: 'two' } })), { field: 'variables.max_retries', message: /must be integer or null, not a string; set it like 0\./ })
})

t.test('a variables schema that is not JSON Schema is refused with what is wrong and the fix, before any variable is checked', async t => {
  const template = v2() as BaseJobTemplate & { variables: { properties: Record<string, unknown> } }
  template.variables.properties.team = { type: 'text' }
  await t.rejects(renderJobConfiguration(request(template, { deployment: { team: 'ab' } })), new TemplateError('variables', 'The work pool\'s variables schema is not valid JSON Schema (schema is invalid: data/properties/team/type must be equal to one of the allowed values, data/properties/team/type must be array, data/properties/team/type must match a schema in anyOf); fix the base job template\'s "variables" section.'))
  // Checked as the pool holds it: the copies compiled without `required` would not see this.
  const other = v2()
  ;(other.variables as Record<string, unknown>).required = 'image'
  await t.rejects(renderJobConfiguration(request(other)), { constructor: TemplateError, field: 'variables', message: /^The work pool's variables schema is not valid JSON Schema \(schema is invalid: data\/required must be array\); fix/ })
  // A schema that names a meta-schema pushpool does not know is refused as ajv refuses it.
  const draft7 = v2()
  ;(draft7.variables as Record<string, unknown>).$schema = 'http://json-schema.org/draft-07/schema#'
  await t.rejects(renderJobConfiguration(request(draft7)), { field: 'variables', message: /not valid JSON Schema \(no schema with key or ref "http:\/\/json-schema.org\/draft-07\/schema#"\)/ })
})

t.test('validation errors never quote a value that may be secret', async (t) => {
  const error = await renderJobConfiguration(request(v2(), { deployment: { env: { DB_PASSWORD: ['hunter2'] } } })).catch((e: unknown) => e)
  t.type(error, TemplateError)
  t.equal((error as TemplateError).field, 'variables.env.DB_PASSWORD')
  t.notMatch((error as Error).message, /hunter2/)
  const secret = await renderJobConfiguration(request(v2(), { deployment: { prefect_api_key_secret: 'pnu_plaintext' } })).catch((e: unknown) => e)
  t.notMatch((secret as Error).message, /pnu_plaintext/)
})

t.test('unknown blocks are TemplateErrors naming the field, the reference and the fix', async (t) => {
  await t.rejects(renderJobConfiguration(request(v2(), { flowRun: { env: { X: '{{ prefect.blocks.gcp-credentials.staging.project }}' } } })), {
    constructor: TemplateError, field: 'job_configuration.env.X', message: /^job_configuration\.env\.X refers to block 'staging' of type 'gcp-credentials', which does not exist; create that block/
  })
  const byId = edited(v2(), configuration => { configuration.credentials = { $ref: { block_document_id: '00000000-0000-4000-8000-000000000000' } } })
  await t.rejects(renderJobConfiguration(request(byId)), {
    constructor: TemplateError, field: 'job_configuration.credentials', message: /^job_configuration\.credentials refers to block document 00000000-0000-4000-8000-000000000000, which does not exist; pick an existing block/
  })
  const missingDefault = v2()
  missingDefault.variables.properties!.credentials.default = { $ref: { block_document_id: '00000000-0000-4000-8000-000000000000' } }
  await t.rejects(renderJobConfiguration(request(missingDefault)), {
    constructor: TemplateError, field: 'variables.credentials.default', message: /^variables\.credentials\.default refers to block document 00000000-0000-4000-8000-000000000000, which does not exist; edit the work pool to pick an existing block for job variable 'credentials'\.$/
  })
})

t.test('job bodies Prefect\'s workers refuse are refused', async (t) => {
  const noContainers = edited(v2(), configuration => { delete (configuration.job_body as any).template.template.containers })
  await t.rejects(renderJobConfiguration(request(noContainers)), {
    constructor: TemplateError, field: 'job_configuration.job_body', message: /missing \/template\/template\/containers/
  })
  const emptyContainers = edited(v2(), configuration => { (configuration.job_body as any).template.template.containers = [] })
  await t.rejects(renderJobConfiguration(request(emptyContainers)), { name: 'TemplateError', field: 'job_configuration.job_body.template.template.containers' })
  const v1WithoutContainers = edited(v1(), configuration => { delete (configuration.job_body as any).spec.template.spec.template.spec.containers })
  await t.rejects(renderJobConfiguration(request(v1WithoutContainers, { type: 'cloud-run' })), {
    constructor: TemplateError, field: 'job_configuration.job_body', message: /missing \/spec\/template\/spec\/template\/spec\/containers/
  })
  await t.rejects(renderJobConfiguration(request(v2(), { type: 'kubernetes' })), { name: 'TemplateError', field: 'work_pool.type' })
})

function edited (template: BaseJobTemplate, edit: (configuration: Record<string, unknown>) => void): BaseJobTemplate {
  edit(template.job_configuration)
  return template
}

t.test('rendering leaves the work pool, deployment and flow run as it found them (they are shared snapshots)', async (t) => {
  const deepFreeze = <T>(value: T): T => {
    if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
      Object.freeze(value)
      for (const child of Object.values(value)) deepFreeze(child)
    }
    return value
  }
  for (const [name, template] of [['v2', v2()], ['v1', v1()]] as const) {
    const frozen = request(template, { type: name === 'v2' ? 'cloud-run-v2' : 'cloud-run', deployment: { credentials: { $ref: { block_document_id: CREDENTIALS.id } }, memory: '1Gi' } })
    deepFreeze(frozen.workPool)
    deepFreeze(frozen.deployment)
    deepFreeze(frozen.flowRun)
    const first = await renderJobConfiguration(frozen)
    const second = await renderJobConfiguration(frozen)
    t.same(second.job, first.job, `${name}: a second render from the same objects is the same`)
  }
})
