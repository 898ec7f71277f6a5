// The differential conformance cases: each is rendered by Prefect's own Python code
// (render.py) and by pushpool, and the results are compared field by field (harness.ts).

import type { BaseJobTemplate, Flow } from '../../src/prefect/types.ts'
import { loadTemplate } from './fixtures.ts'
import { wholeFloat } from '../../src/prefect/exact-json.ts'

export interface CaseBlock {
  id: string
  block_type_slug: string
  name: string
  data: Record<string, unknown>
}

export interface ConformanceCase {
  id: string
  about: string
  poolType: 'cloud-run-v2' | 'cloud-run'
  template: BaseJobTemplate
  /** The deployment's job variables; the deployment exists unless `withoutDeployment`. */
  deploymentJobVariables?: Record<string, unknown>
  withoutDeployment?: boolean
  flowRunJobVariables?: Record<string, unknown> | null
  flowRunName?: string
  /** The flow run's parameters; a fixed set when absent. */
  flowRunParameters?: Record<string, unknown>
  /** The flow; a standard one when absent, none when null. */
  flow?: Flow | null
  blocks?: CaseBlock[]
  /** Prefect Variables by name. */
  variables?: Record<string, unknown>
  baseEnvironment?: Record<string, string>
  workerId?: string
  /**
   * An infrastructure-bound flow run (`Flow.submit_to_work_pool`): no deployment, and the flow
   * run's `command` job variable is what Prefect builds from the pool's bundle execution step
   * (render.py --bundle-commands), added to `flowRunJobVariables`.
   */
  bundle?: BundleSubmission
}

export interface BundleSubmission {
  /** The pool's `storage_configuration.bundle_execution_step`. */
  executionStep: Record<string, Record<string, unknown>>
  /** The flow's launcher override (`@cloud_run(launcher=…)`). */
  launcher?: string[] | Record<string, string[]>
}

/** The bundle key a case's flow run names (a uuid4 in Prefect). */
export const BUNDLE_KEY = '2f1e0d9c-8b7a-4695-8483-72615f4e3d2c'

// Test fixtures are edited freely; the renderers under test check every shape.
type JsonObject = Record<string, any>

const v2 = (): BaseJobTemplate => loadTemplate('cloud-run-v2.default')
const v1 = (): BaseJobTemplate => loadTemplate('cloud-run.default')
const registryV2 = (): BaseJobTemplate => loadTemplate('cloud-run-v2.registry-6939db85')

/** A copy of `template` after `edit` has changed its job_configuration (as the pool's JSON editor would). */
function edited (template: BaseJobTemplate, edit: (configuration: JsonObject, variables: JsonObject) => void): BaseJobTemplate {
  const copy = structuredClone(template)
  edit(copy.job_configuration as JsonObject, copy.variables as JsonObject)
  return copy
}

const v2Task = (configuration: JsonObject): JsonObject => configuration.job_body.template.template
const v2Container = (configuration: JsonObject): JsonObject => v2Task(configuration).containers[0]
const v1TaskSpec = (configuration: JsonObject): JsonObject => configuration.job_body.spec.template.spec.template.spec

const CREDENTIALS_BLOCK: CaseBlock = {
  id: '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b',
  block_type_slug: 'gcp-credentials',
  name: 'prod',
  data: {
    service_account_info: { type: 'service_account', project_id: 'acme-prod', client_email: 'runner@acme-prod.iam.gserviceaccount.com', private_key: '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n' },
    project: 'acme-prod'
  }
}
const SECRET_BLOCK: CaseBlock = { id: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d', block_type_slug: 'secret', name: 'db-password', data: { value: 's3cr3t-pw' } }
const STRING_BLOCK: CaseBlock = { id: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e', block_type_slug: 'string', name: 'image-name', data: { value: 'europe-docker.pkg.dev/acme/flows/etl:1.4.2' } }
const JSON_BLOCK: CaseBlock = {
  id: '3c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e7f',
  block_type_slug: 'json',
  name: 'settings',
  data: { value: { region: 'europe-west1', sizes: ['small', 'large'], nested: { cpu: '2000m' } } }
}
const API_AUTH = { PREFECT_API_URL: 'https://prefect.acme.internal/api', PREFECT_API_AUTH_STRING: 'admin:pa55word' }

/** Defaults Prefect's server refuses for each format it checks. */
const INVALID_FORMAT_DEFAULTS = {
  date: '2024-02-30',
  'date-time': '2024-05-01 12:00:00Z',
  ipv4: '10.0.0.256',
  ipv6: 'fe80::1%eth0',
  email: 'nobody',
  uuid: '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5',
  time: '25:00:00Z',
  'json-pointer': 'a/b',
  regex: '(?<name>x)'
} as const

/** The v2 template with a `format` variable holding `value` as its default, rendered into an annotation, and a required variable left unset. */
function withFormatDefault (format: string, value: string): BaseJobTemplate {
  return edited(v2(), (configuration, variables) => {
    variables.properties.checked = { type: 'string', format, default: value }
    variables.properties.team = { type: 'string' }
    variables.required = ['team']
    configuration.job_body.annotations = { checked: '{{ checked }}' }
  })
}

/** The v2 template with the settings a GPU job adds: an accelerator, a GPU count, zonal redundancy off. */
function gpuTemplate (): BaseJobTemplate {
  return edited(v2(), (configuration, variables) => {
    variables.properties.gpu_type = { type: 'string', default: 'nvidia-l4' }
    variables.properties.gpu_count = { type: 'string', default: '1' }
    v2Task(configuration).nodeSelector = { accelerator: '{{ gpu_type }}' }
    v2Task(configuration).gpuZonalRedundancyDisabled = true
    v2Container(configuration).resources.limits['nvidia.com/gpu'] = '{{ gpu_count }}'
  })
}

export const CASES: ConformanceCase[] = [
  // --- the installed cloud-run-v2 default template -------------------------------------------
  { id: 'v2-defaults', about: 'default v2 template, no job variables', poolType: 'cloud-run-v2', template: v2() },
  { id: 'v2-no-deployment', about: 'a flow run without a deployment', poolType: 'cloud-run-v2', template: v2(), withoutDeployment: true },
  { id: 'v2-no-flow', about: 'the flow cannot be read', poolType: 'cloud-run-v2', template: v2(), flow: null },
  {
    id: 'v2-every-variable',
    about: 'every v2 variable set by the deployment',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: {
      name: 'nightly-{{ ctx.flow_run.name }}',
      env: { LOG_LEVEL: 'DEBUG', EMPTY: '' },
      labels: { team: 'data', 'cost-center': 'cc-42' },
      command: 'python -m etl.main --all',
      region: 'europe-west1',
      image: 'europe-docker.pkg.dev/acme/flows/etl:1.4.2',
      args: ['--date', '2024-05-01'],
      env_from_secrets: { DB_PASSWORD: { secret: 'db-password', version: '3' } },
      prefect_api_key_secret: { secret: 'prefect-api-key', version: 'latest' },
      prefect_api_auth_string_secret: { secret: 'prefect-auth', version: '2' },
      cloudsql_instances: ['acme-prod:europe-west1:warehouse'],
      keep_job: true,
      launch_stage: 'GA',
      max_retries: 2,
      cpu: '2000m',
      memory: '4Gi',
      timeout: 7200,
      vpc_connector_name: 'projects/acme-prod/locations/europe-west1/connectors/etl',
      service_account_name: 'runner@acme-prod.iam.gserviceaccount.com'
    },
    baseEnvironment: API_AUTH
  },
  {
    id: 'v2-flow-run-overrides',
    about: 'flow-run job variables: env merged key by key, everything else replaced',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { env: { A: 'deployment', B: 'deployment' }, image: 'repo/etl:1', args: ['--x'] },
    flowRunJobVariables: { env: { B: 'flow-run', C: 'flow-run' }, image: 'repo/etl:2', cpu: '4000m' }
  },
  {
    id: 'v2-env-dot-keys',
    about: 'dotted job variable keys are expanded, nested env wins',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { 'env.FROM_DOT': 'dot', 'env.SHARED': 'dot', env: { SHARED: 'nested', NESTED: 'n' } }
  },
  {
    id: 'v2-pool-default-env',
    about: 'a default env in the pool is merged with the deployment\'s',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (_, variables) => { variables.properties.env.default = { POOL_LEVEL: 'pool', OVERRIDDEN: 'pool' } }),
    deploymentJobVariables: { env: { OVERRIDDEN: 'deployment' } }
  },
  {
    id: 'v2-env-object-in-template',
    about: 'job_configuration.env pinned as an object with a placeholder, merged with job variables',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      configuration.env = { STATIC: 'static', REGION_COPY: '{{ region }}', UNKNOWN: '{{ not_declared }}' }
      variables.properties.env.default = { DEFAULTED: 'yes' }
    }),
    deploymentJobVariables: { env: { FROM_DEPLOYMENT: 'd' } },
    flowRunJobVariables: { env: { FROM_FLOW_RUN: 'f' } }
  },
  {
    id: 'v2-env-non-string-values',
    about: 'env values are Python str()-ed; None values are dropped',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { env: { INT: 7, BOOL: true, NONE: null, FLOAT: 0.25, LIST: ['a', "it's"], DICT: { k: false } } }
  },
  {
    id: 'v2-command-and-args-strings',
    about: 'a string command and string args are split with shlex rules',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { v2Container(configuration).args = '--name "two words" --path=\'/a b\' \\"escaped\\" \'\'' }),
    deploymentJobVariables: { command: 'python -c "print(\'hi\')" --flag' }
  },
  {
    id: 'v2-command-unbalanced-quote',
    about: 'a command with an unbalanced quote cannot be split',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { command: 'echo \'oops' }
  },
  {
    id: 'v2-explicit-nulls',
    about: 'explicit nulls are kept (image, service account), a null connector drops vpcAccess',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { image: null, service_account_name: null, vpc_connector_name: null, name: null, command: null }
  },
  {
    id: 'v2-missing-variables',
    about: 'undeclared placeholders: key removed, list item dropped, "" inside a longer string',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      configuration.job_body.annotations = { whole: '{{ nowhere }}', inline: 'before-{{ nowhere }}-after' }
      v2Container(configuration).args = ['--keep', '{{ nowhere }}', 'x={{ nowhere }}']
      v2Task(configuration).nodeSelector = '{{ nowhere }}'
    })
  },
  {
    id: 'v2-placeholders-in-lists',
    about: 'placeholders inside lists, including typed values spliced as list items',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.extra_args = { type: 'array', items: { type: 'string' } }
      variables.properties.flag = { type: 'string', default: '--verbose' }
      v2Container(configuration).args = ['{{ flag }}', '{{ extra_args }}', '--region={{ region }}']
    }),
    deploymentJobVariables: { extra_args: ['a', 'b'] }
  },
  {
    id: 'v2-mixed-strings-python-str',
    about: 'mixed strings render bools, None, dicts and lists the way Python str() does',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.nothing = { anyOf: [{ type: 'string' }, { type: 'null' }] }
      variables.properties.mapping = { type: 'object' }
      configuration.job_body.annotations = {
        summary: 'keep={{ keep_job }} retries={{ max_retries }} none={{ nothing }} map={{ mapping }} args={{ args }}'
      }
    }),
    deploymentJobVariables: { keep_job: true, nothing: null, mapping: { quote: "it's", both: 'say "hi" it\'s', tab: 'a\tb', uni: 'é', nested: [1, 2.5, null] }, args: ['x', 'y'] }
  },
  {
    id: 'v2-typed-whole-placeholders',
    about: 'a string that is exactly one placeholder becomes the typed value',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.selector = { type: 'object' }
      variables.properties.parallel = { type: 'integer', default: 3 }
      v2Task(configuration).nodeSelector = '{{ selector }}'
      configuration.job_body.template.parallelism = '{{ parallel }}'
      configuration.job_body.template.taskCount = '{{parallel}}'
    }),
    deploymentJobVariables: { selector: { accelerator: 'nvidia-l4' } }
  },
  {
    id: 'v2-ui-custom-placeholder',
    about: 'a UI-edited template with a custom placeholder set per deployment',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.my_custom_annotation = { title: 'Custom annotation', type: 'string' }
      configuration.job_body.annotations = { 'acme.com/owner': '{{ my_custom_annotation }}' }
      configuration.job_body.template.annotations = { 'acme.com/owner-copy': 'owner: {{ my_custom_annotation }}' }
    }),
    deploymentJobVariables: { my_custom_annotation: 'data-platform' }
  },
  {
    id: 'v2-ui-custom-placeholder-unset',
    about: 'the same custom placeholder left unset',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.my_custom_annotation = { title: 'Custom annotation', type: 'string' }
      configuration.job_body.annotations = { 'acme.com/owner': '{{ my_custom_annotation }}' }
    })
  },
  {
    id: 'v2-pinned-values',
    about: 'values pinned in the template in place of placeholders',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      configuration.job_body.launchStage = 'GA'
      configuration.timeout = 3600
      configuration.region = 'asia-northeast1'
      const container = v2Container(configuration)
      container.image = 'gcr.io/acme/pinned:7'
      container.resources.limits = { cpu: '2', memory: '4Gi' }
      container.command = ['python', '-m', 'runner']
      container.args = []
      v2Task(configuration).serviceAccount = 'pinned@acme.iam.gserviceaccount.com'
    }),
    deploymentJobVariables: { image: 'ignored:because-pinned', cpu: '8000m' }
  },
  {
    id: 'v2-image-key-missing',
    about: 'a container without an image key gets Prefect\'s default image',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { delete v2Container(configuration).image })
  },
  {
    id: 'v2-labels',
    about: 'labels sanitised for GCP, template labels win and are kept verbatim',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      configuration.job_body.labels = { 'prefect-io-flow-run-name': 'pinned', Verbatim: 'Kept As Is' }
      configuration.job_body.template.labels = { tier: 'batch' }
    }),
    deploymentJobVariables: { labels: { 'Team.Name/Owner': 'Data Platform', '123-starts-with-digit': 'x', '---': 'dropped', long: 'v'.repeat(80) } },
    flowRunName: 'Nightly ETL run #42'
  },
  {
    id: 'v2-label-cap',
    about: 'past 64 labels the lowest-priority Prefect labels are dropped, template labels never',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      configuration.job_body.labels = Object.fromEntries(Array.from({ length: 58 }, (_, i) => [`template-${i}`, `v${i}`]))
    })
  },
  {
    id: 'v2-secrets',
    about: 'API key and auth string from secrets replace the plaintext values; env_from_secrets appended',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: {
      env_from_secrets: { PREFECT_API_KEY: { secret: 'prefect-key', version: 'latest' }, OTHER: { secret: 'other', version: '1' } },
      prefect_api_auth_string_secret: { secret: 'prefect-auth', version: '5' }
    },
    baseEnvironment: { ...API_AUTH, PREFECT_API_KEY: 'pnu_plaintext' }
  },
  {
    id: 'v2-plaintext-credentials',
    about: 'the worker\'s API auth string reaches the job in plaintext, with a warning',
    poolType: 'cloud-run-v2',
    template: v2(),
    baseEnvironment: { ...API_AUTH, PREFECT_API_KEY: 'pnu_plaintext' }
  },
  {
    id: 'v2-base-environment-overridden',
    about: 'the template env overrides a worker setting in place',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { env: { PREFECT_API_URL: 'http://override/api', PREFECT__FLOW_RUN_ID: 'overridden' } },
    baseEnvironment: { PREFECT_API_URL: 'http://worker/api', PREFECT_LOGGING_LEVEL: 'DEBUG' },
    workerId: '9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a'
  },
  {
    id: 'v2-cloudsql',
    about: 'Cloud SQL instances add a volume and a mount next to existing ones',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      v2Task(configuration).volumes = [{ name: 'scratch', emptyDir: { medium: 'MEMORY' } }]
      v2Container(configuration).volumeMounts = [{ name: 'scratch', mountPath: '/scratch' }]
    }),
    deploymentJobVariables: { cloudsql_instances: ['acme:europe-west1:a', 'acme:europe-west1:b'] }
  },
  {
    id: 'v2-vpc-access-kept',
    about: 'vpcAccess with egress but no connector is kept',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { v2Task(configuration).vpcAccess = { connector: '{{ vpc_connector_name }}', egress: 'ALL_TRAFFIC' } })
  },
  {
    id: 'v2-no-containers',
    about: 'a job body without template.template.containers is refused',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { delete v2Task(configuration).containers })
  },
  {
    id: 'v2-empty-containers',
    about: 'an empty containers list is refused',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { v2Task(configuration).containers = [] })
  },
  {
    id: 'v2-container-without-env',
    about: 'a container without an env list is refused',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { delete v2Container(configuration).env })
  },
  // --- blocks and variables --------------------------------------------------------------------
  {
    id: 'v2-credentials-block-ref',
    about: 'credentials given as a $ref to a block document',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { credentials: { $ref: { block_document_id: CREDENTIALS_BLOCK.id } } },
    blocks: [CREDENTIALS_BLOCK]
  },
  {
    id: 'v2-credentials-pool-default',
    about: 'the pool\'s credentials default is a $ref to a block document',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (_, variables) => { variables.properties.credentials.default = { $ref: { block_document_id: CREDENTIALS_BLOCK.id } } }),
    blocks: [CREDENTIALS_BLOCK]
  },
  {
    id: 'v2-credentials-info-as-json-string',
    about: 'a credentials block whose service_account_info is a JSON string',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (_, variables) => { variables.properties.credentials.default = { $ref: { block_document_id: CREDENTIALS_BLOCK.id } } }),
    blocks: [{ ...CREDENTIALS_BLOCK, data: { service_account_info: JSON.stringify(CREDENTIALS_BLOCK.data.service_account_info), project: 'acme-prod' } }]
  },
  {
    id: 'v2-blocks-by-slug',
    about: 'block placeholders by slug: whole-string typed, single-value unwrap, key paths, inline',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      v2Container(configuration).image = '{{ prefect.blocks.string.image-name }}'
      configuration.job_body.annotations = {
        project: '{{ prefect.blocks.gcp-credentials.prod.project }}',
        dsn: 'postgres://etl:{{ prefect.blocks.secret.db-password }}@db:5432/etl',
        region: '{{ prefect.blocks.json.settings.region }}',
        second: 'size={{ prefect.blocks.json.settings.value.sizes[1] }}'
      }
      v2Task(configuration).nodeSelector = '{{ prefect.blocks.json.settings.nested }}'
    }),
    blocks: [CREDENTIALS_BLOCK, SECRET_BLOCK, STRING_BLOCK, JSON_BLOCK]
  },
  {
    id: 'v2-block-unknown-id',
    about: 'a $ref to a block document that does not exist',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { credentials: { $ref: { block_document_id: '00000000-0000-4000-8000-000000000000' } } }
  },
  {
    id: 'v2-block-unknown-name',
    about: 'a block placeholder naming a block that does not exist',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { v2Container(configuration).image = '{{ prefect.blocks.string.missing }}' })
  },
  {
    id: 'v2-block-inline-object',
    about: 'an inline block placeholder that resolves to an object',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { configuration.job_body.annotations = { bad: 'settings={{ prefect.blocks.json.settings }}' } }),
    blocks: [JSON_BLOCK]
  },
  {
    id: 'v2-prefect-variables',
    about: 'Prefect variables: whole-string typed, inline str(), missing ones ""',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      v2Container(configuration).image = 'repo/etl:{{ prefect.variables.etl_tag }}'
      configuration.job_body.annotations = {
        retries: '{{ prefect.variables.retries }}',
        missing: '{{ prefect.variables.does_not_exist }}',
        flags: 'flags={{ prefect.variables.flags }}; missing={{ prefect.variables.does_not_exist }}'
      }
      v2Task(configuration).nodeSelector = '{{ prefect.variables.selector }}'
    }),
    variables: { etl_tag: '1.4.2', retries: 3, flags: { debug: true, level: null }, selector: { pool: 'gpu' } }
  },
  {
    id: 'v2-variable-and-block-in-job-variables',
    about: 'block and variable placeholders passed in job variables are resolved after substitution',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { image: '{{ prefect.blocks.string.image-name }}', env: { TAG: '{{ prefect.variables.etl_tag }}', PW: '{{ prefect.blocks.secret.db-password }}' } },
    blocks: [STRING_BLOCK, SECRET_BLOCK],
    variables: { etl_tag: '1.4.2' }
  },
  {
    id: 'v2-environment-placeholders',
    about: '{{ $NAME }} placeholders render as "" (the variable is unset for Prefect too)',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      configuration.job_body.annotations = { home: 'home={{ $PUSHPOOL_CONFORMANCE_UNSET }}', whole: '{{ $PUSHPOOL_CONFORMANCE_UNSET }}' }
    })
  },
  {
    id: 'v2-edge-values',
    about: 'typed env values, an empty command, a placeholder inside a job variable, an empty vpcAccess',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.workers = { type: 'integer', default: 4 }
      configuration.env = { WORKERS: '{{ workers }}', FLAGS: '{{ args }}' }
      v2Task(configuration).vpcAccess = {}
      configuration.job_body.template.template.customField = 'ignored-by-prefect-{{ region }}'
      configuration.not_a_model_field = '{{ region }}'
    }),
    deploymentJobVariables: { command: '', image: '{{ region }}', 'env.NESTED.KEY': 'v', args: ['-v'] }
  },
  {
    id: 'v2-flow-run-env-without-deployment-env',
    about: 'a flow-run env replaces the env when the deployment sets none',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { image: 'repo/etl:1' },
    flowRunJobVariables: { env: { ONLY: 'flow-run' } }
  },
  {
    id: 'v2-block-value-keypath',
    about: 'a key path starting with "value" into a single-value block is not unwrapped twice',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      configuration.job_body.annotations = { a: '{{ prefect.blocks.secret.db-password.value }}', b: '{{ prefect.blocks.json.settings.value }}' }
    }),
    blocks: [SECRET_BLOCK, JSON_BLOCK]
  },
  {
    id: 'v2-pool-default-block-missing',
    about: 'the pool\'s credentials default refers to a block that no longer exists',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (_, variables) => { variables.properties.credentials.default = { $ref: { block_document_id: '00000000-0000-4000-8000-000000000000' } } })
  },
  {
    id: 'v2-labels-null',
    about: 'labels set to null pass the schema but not the worker\'s model',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { labels: null }
  },
  {
    id: 'v2-name-whole-placeholder',
    about: 'a name that is exactly one ctx placeholder',
    poolType: 'cloud-run-v2',
    template: v2(),
    flowRunJobVariables: { name: '{{ ctx.flow_run.name }}' },
    flowRunName: 'Backfill May'
  },
  {
    id: 'v1-keep-job-null-timeout-string',
    about: 'v1 allows a null keep_job; a string timeout passes the v1 model but not the schema',
    poolType: 'cloud-run',
    template: v1(),
    deploymentJobVariables: { keep_job: null, timeout: '900' }
  },
  // --- names -----------------------------------------------------------------------------------
  { id: 'v2-name-unicode-latin', about: 'a Latin unicode flow run name', poolType: 'cloud-run-v2', template: v2(), flowRunName: 'Café Ünïcödé — Straße nach Łódź ©2024' },
  { id: 'v2-name-unicode-cjk', about: 'a CJK flow run name', poolType: 'cloud-run-v2', template: v2(), flowRunName: '日本のフロー' },
  { id: 'v2-name-unicode-cyrillic-greek', about: 'Cyrillic, Greek and symbol characters in a flow run name', poolType: 'cloud-run-v2', template: v2(), flowRunName: 'Ночной отчёт — Σύνοψη ₂₀₂₄ ℃ № ™' },
  { id: 'v2-name-slugs-to-nothing', about: 'a flow run name that slugs to nothing', poolType: 'cloud-run-v2', template: v2(), flowRunName: '🚀 ✨ 🚀' },
  { id: 'v2-name-leading-digit', about: 'a flow run name starting with a digit', poolType: 'cloud-run-v2', template: v2(), flowRunName: '2024-05-01 backfill' },
  { id: 'v2-name-long', about: 'a long flow run name is cut to 55 characters', poolType: 'cloud-run-v2', template: v2(), flowRunName: 'an-extremely-long-flow-run-name-that-goes-on-and-on-well-past-the-limit-of-cloud-run' },
  { id: 'v2-name-entities', about: 'HTML entities and quotes in a flow run name', poolType: 'cloud-run-v2', template: v2(), flowRunName: 'R&amp;D&#x41;\'s 1,000 runs' },
  {
    id: 'v2-name-template',
    about: 'a name job variable using ctx.flow and ctx.flow_run',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { name: '{{ ctx.flow.name }}/{{ ctx.flow_run.name }}/{{ ctx.flow_run.parameters.day }}' }
  },
  // --- variables that break the pool's schema ----------------------------------------------------
  { id: 'v2-memory-invalid', about: 'memory without a unit breaks the schema', poolType: 'cloud-run-v2', template: v2(), deploymentJobVariables: { memory: '512' } },
  { id: 'v2-timeout-too-long', about: 'a timeout above 7 days', poolType: 'cloud-run-v2', template: v2(), flowRunJobVariables: { timeout: 700000 } },
  { id: 'v2-timeout-zero', about: 'a timeout of zero', poolType: 'cloud-run-v2', template: v2(), deploymentJobVariables: { timeout: 0 } },
  { id: 'v2-timeout-as-string', about: 'a timeout given as a string', poolType: 'cloud-run-v2', template: v2(), flowRunJobVariables: { timeout: '900' } },
  { id: 'v2-launch-stage-invalid', about: 'a launch stage outside the enum', poolType: 'cloud-run-v2', template: v2(), deploymentJobVariables: { launch_stage: 'SOMEDAY' } },
  { id: 'v2-keep-job-string', about: 'keep_job given as "yes"', poolType: 'cloud-run-v2', template: v2(), deploymentJobVariables: { keep_job: 'yes' } },
  {
    id: 'v2-required-variable-missing',
    about: 'a variable the pool marks required is not set',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.team = { type: 'string' }
      variables.required = ['team']
      configuration.job_body.labels = { team: '{{ team }}' }
    })
  },
  {
    id: 'v2-flow-run-env-null',
    about: 'a flow run env of null cannot be merged into the deployment\'s env',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { env: { A: 'a' } },
    flowRunJobVariables: { env: null }
  },
  {
    id: 'v2-dot-key-conflict',
    about: 'a dotted key that runs through a value set by another dotted key',
    poolType: 'cloud-run-v2',
    template: v2(),
    deploymentJobVariables: { 'env.A': 'x', 'env.A.B': 'y' }
  },
  // --- numbers JavaScript cannot hold: integers beyond 2^53, whole floats ---------------------------
  {
    id: 'v2-exact-numbers-pinned-env',
    about: 'big integers and whole floats pinned in the template\'s env print as Python str() does',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => {
      configuration.env = {
        BIG: 12345678901234567890n,
        NEGATIVE_BIG: -98765432109876543210n,
        JUST_ABOVE_2_53: 9007199254740993n,
        WHOLE_FLOAT: wholeFloat(1),
        EXPONENT_FLOAT: wholeFloat(1e5),
        HUGE_FLOAT: wholeFloat(1.2345678901234568e+29),
        NEGATIVE_ZERO: wholeFloat(-0),
        FRACTION: 0.1,
        TINY: 5e-5,
        NESTED: { big: 12345678901234567890n, floats: [wholeFloat(2), 2.5], int: 3 }
      }
    })
  },
  {
    id: 'v2-exact-numbers-everywhere',
    about: 'exact numbers from job variables, pool defaults, flow-run parameters, blocks and Prefect variables',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.shard = { type: 'integer', default: 18446744073709551617n }
      variables.properties.ratio = { type: 'number', default: wholeFloat(3) }
      configuration.env = { SHARD: '{{ shard }}', RATIO: '{{ ratio }}' }
      configuration.job_body.annotations = {
        mixed: 'shard={{ shard }} ratio={{ ratio }} retries={{ max_retries }}',
        block: 'id={{ prefect.blocks.json.big-ids.value.first }}',
        variable: 'v={{ prefect.variables.big_variable }}'
      }
      configuration.job_body.template.taskCount = '{{ max_retries }}'
    }),
    deploymentJobVariables: { name: 'run-{{ ctx.flow_run.parameters.big }}', ratio: wholeFloat(1e5) },
    flowRunJobVariables: { timeout: wholeFloat(900), max_retries: wholeFloat(2), shard: -98765432109876543210n },
    flowRunParameters: { big: 12345678901234567890n },
    blocks: [{ id: '4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a', block_type_slug: 'json', name: 'big-ids', data: { value: { first: 99999999999999999999n } } }],
    variables: { big_variable: 340282366920938463463374607431768211456n }
  },
  { id: 'v2-exact-timeout-too-big', about: 'a timeout beyond 2^64 breaks the schema\'s maximum', poolType: 'cloud-run-v2', template: v2(), deploymentJobVariables: { timeout: 36893488147419103232n } },
  { id: 'v2-exact-keep-job-float', about: 'keep_job given as 1.0 is not a boolean to the schema', poolType: 'cloud-run-v2', template: v2(), deploymentJobVariables: { keep_job: wholeFloat(1) } },
  // --- JSON Schema patterns as Python's re reads them ----------------------------------------------
  { id: 'v2-pattern-final-newline', about: 'memory "512Mi\\n" passes ^…$: Python\'s $ matches before a final newline', poolType: 'cloud-run-v2', template: v2(), deploymentJobVariables: { memory: '512Mi\n' } },
  { id: 'v2-pattern-unicode-digits', about: 'memory in full-width digits passes \\d, which is Unicode-aware in Python', poolType: 'cloud-run-v2', template: v2(), flowRunJobVariables: { memory: '５１２Mi' } },
  {
    id: 'v2-pattern-python-syntax',
    about: 'a pattern written in Python\'s syntax: named group (?P<…>), {,n}, \\Z',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.team = { type: 'string', pattern: '^(?P<unit>[a-z]+)-\\d{,3}\\Z' }
      configuration.job_body.labels = { team: '{{ team }}' }
    }),
    deploymentJobVariables: { team: 'data-42' }
  },
  {
    id: 'v2-pattern-python-syntax-mismatch',
    about: 'the same pattern refuses a value with a trailing newline, since \\Z is the very end',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (_, variables) => { variables.properties.team = { type: 'string', pattern: '^(?P<unit>[a-z]+)-\\d{,3}\\Z' } }),
    deploymentJobVariables: { team: 'data-42\n' }
  },
  {
    id: 'v2-pattern-not-python',
    about: 'a pattern JavaScript reads but Python refuses ((?<name>…)) makes the schema invalid',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (_, variables) => { variables.properties.team = { type: 'string', pattern: '^(?<unit>[a-z]+)$' } }),
    deploymentJobVariables: { team: 'data' }
  },
  // --- JSON Schema formats on pool defaults ------------------------------------------------------------
  ...(['date', 'date-time', 'ipv4', 'ipv6', 'email', 'uuid', 'time', 'json-pointer', 'regex'] as const).map((format): ConformanceCase => ({
    id: `v2-format-invalid-${format}-default`,
    about: `a ${format} default the server's format check refuses is dropped, so a missing required variable is not enforced`,
    poolType: 'cloud-run-v2',
    template: withFormatDefault(format, INVALID_FORMAT_DEFAULTS[format])
  })),
  {
    id: 'v2-format-valid-defaults',
    about: 'defaults that pass every format check are kept, and the missing required variable is refused',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      Object.assign(variables.properties, {
        since: { type: 'string', format: 'date', default: '2024-02-29' },
        at: { type: 'string', format: 'date-time', default: '2024-05-01t12:00:00z\n' },
        host: { type: 'string', format: 'ipv4', default: '10.0.0.1' },
        host6: { type: 'string', format: 'ipv6', default: '::ffff:10.0.0.1' },
        owner: { type: 'string', format: 'email', default: 'data@acme.example' },
        run_id: { type: 'string', format: 'uuid', default: '7F0C2B1E-4D5A-4E6F-8A9B-0C1D2E3F4A5B' },
        team: { type: 'string' }
      })
      variables.required = ['team']
      configuration.job_body.annotations = { since: '{{ since }}', at: '{{ at }}', host: '{{ host }}', owner: '{{ owner }}' }
    })
  },
  {
    id: 'v2-format-unchecked-default',
    about: 'formats the server does not check (uri, hostname) keep any default, so required is enforced',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (_, variables) => {
      variables.properties.endpoint = { type: 'string', format: 'uri', default: 'not a uri' }
      variables.properties.host = { type: 'string', format: 'hostname', default: '-bad-' }
      variables.properties.team = { type: 'string' }
      variables.required = ['team']
    })
  },
  {
    id: 'v2-format-not-checked-on-job-variables',
    about: 'formats are checked on pool defaults only: an invalid date from the deployment passes',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration, variables) => {
      variables.properties.since = { type: 'string', format: 'date' }
      configuration.job_body.annotations = { since: '{{ since }}' }
    }),
    deploymentJobVariables: { since: '2024-02-30' }
  },
  // --- GPU jobs --------------------------------------------------------------------------------------
  {
    id: 'v2-gpu-l4',
    about: 'a GPU job: accelerator node selector, nvidia.com/gpu limit, zonal redundancy off, a 1-hour timeout',
    poolType: 'cloud-run-v2',
    template: gpuTemplate(),
    deploymentJobVariables: { cpu: '4000m', memory: '16Gi', timeout: 3600, launch_stage: 'GA' }
  },
  {
    id: 'v2-gpu-timeout-over-cap',
    about: 'a GPU job with a 2-hour timeout under the GA launch stage, which Cloud Run refuses',
    poolType: 'cloud-run-v2',
    template: gpuTemplate(),
    deploymentJobVariables: { cpu: '4000m', memory: '16Gi', timeout: 7200, launch_stage: 'GA' }
  },
  // --- infrastructure-bound flows: bundles ------------------------------------------------------------
  {
    id: 'v2-bundle-gcs',
    about: 'a flow submitted to the pool with GCS bundle storage: the execute step as the command, no deployment',
    poolType: 'cloud-run-v2',
    template: v2(),
    withoutDeployment: true,
    flowRunJobVariables: { image: 'europe-docker.pkg.dev/acme/flows/base:3', env: { STAGE: 'prod' } },
    bundle: {
      executionStep: { 'prefect_gcp.bundles.execute': { requires: 'prefect-gcp', bucket: 'acme-flow-bundles', gcp_credentials_block_name: 'prod' } }
    }
  },
  {
    id: 'v2-bundle-launcher',
    about: 'the flow\'s own launcher replaces uv; arguments with spaces and quotes survive the shell quoting',
    poolType: 'cloud-run-v2',
    template: v2(),
    withoutDeployment: true,
    bundle: {
      executionStep: { 'acme.bundles.execute': { requires: ['acme-bundles>=2'], directory: '/mnt/bundles/it\'s here' } },
      launcher: { execution: ['/opt/venv/bin/python', '-X', 'utf8'] }
    }
  },
  {
    id: 'v2-bundle-pinned-command-args',
    about: 'a template that pins args keeps them after the bundle command',
    poolType: 'cloud-run-v2',
    template: edited(v2(), (configuration) => { v2Container(configuration).args = ['--log-level', 'debug'] }),
    withoutDeployment: true,
    bundle: { executionStep: { 'prefect_aws.bundles.execute': { requires: 'prefect-aws', bucket: 'acme' } } }
  },
  // --- the older registry template ---------------------------------------------------------------
  { id: 'registry-v2-defaults', about: 'registry v2 template, no job variables', poolType: 'cloud-run-v2', template: registryV2() },
  {
    id: 'registry-v2-variables',
    about: 'registry v2 template with job variables it knows',
    poolType: 'cloud-run-v2',
    template: registryV2(),
    deploymentJobVariables: { image: 'repo/etl:3', timeout: 80000, env: { A: '1' }, vpc_connector_name: 'conn', service_account_name: 'sa@acme.iam.gserviceaccount.com', args: ['--go'] },
    baseEnvironment: API_AUTH
  },
  { id: 'registry-v2-timeout-over', about: 'registry v2 template caps timeout at 86400', poolType: 'cloud-run-v2', template: registryV2(), deploymentJobVariables: { timeout: 90000 } },
  {
    id: 'registry-v2-secret-variables-ignored',
    about: 'variables the registry template does not declare have no effect',
    poolType: 'cloud-run-v2',
    template: registryV2(),
    deploymentJobVariables: { cloudsql_instances: ['a:b:c'], env_from_secrets: { X: { secret: 's', version: '1' } } }
  },
  // --- the installed cloud-run (v1) default template ----------------------------------------------
  { id: 'v1-defaults', about: 'default v1 template, no job variables', poolType: 'cloud-run', template: v1() },
  {
    id: 'v1-every-variable',
    about: 'every v1 variable set by the deployment',
    poolType: 'cloud-run',
    template: v1(),
    deploymentJobVariables: {
      env: { LOG_LEVEL: 'DEBUG' },
      labels: { team: 'data' },
      command: 'python -m etl.main',
      region: 'europe-west1',
      prefect_api_key_secret: { secret: 'prefect-api-key', version: 'latest' },
      prefect_api_auth_string_secret: { secret: 'prefect-auth', version: '2' },
      image: 'europe-docker.pkg.dev/acme/flows/etl:1.4.2',
      cpu: '2000m',
      memory: '1Gi',
      vpc_connector_name: 'etl-connector',
      service_account_name: 'runner@acme-prod.iam.gserviceaccount.com',
      keep_job: true,
      timeout: 1800,
      credentials: { $ref: { block_document_id: CREDENTIALS_BLOCK.id } }
    },
    blocks: [CREDENTIALS_BLOCK],
    baseEnvironment: { ...API_AUTH, PREFECT_API_KEY: 'pnu_plaintext' }
  },
  { id: 'v1-plaintext-credentials', about: 'v1 plaintext credential warnings', poolType: 'cloud-run', template: v1(), baseEnvironment: API_AUTH },
  { id: 'v1-cpu-invalid', about: 'a v1 cpu without the 000m form breaks the schema', poolType: 'cloud-run', template: v1(), deploymentJobVariables: { cpu: '2' } },
  { id: 'v1-timeout-over', about: 'a v1 timeout above one hour', poolType: 'cloud-run', template: v1(), deploymentJobVariables: { timeout: 4000 } },
  { id: 'v1-pinned-name', about: 'a name job variable pins metadata.name', poolType: 'cloud-run', template: v1(), deploymentJobVariables: { name: 'etl-job' } },
  {
    id: 'v1-launch-stage-changed',
    about: 'a v1 launch-stage annotation other than BETA is incompatible',
    poolType: 'cloud-run',
    template: edited(v1(), (configuration) => { configuration.job_body.metadata.annotations['run.googleapis.com/launch-stage'] = 'GA' })
  },
  {
    id: 'v1-no-containers',
    about: 'a v1 body without containers is refused',
    poolType: 'cloud-run',
    template: edited(v1(), (configuration) => { v1TaskSpec(configuration).containers = [] })
  },
  {
    id: 'v1-annotations-and-args',
    about: 'v1 template with extra annotations, labels and string args',
    poolType: 'cloud-run',
    template: edited(v1(), (configuration) => {
      configuration.job_body.metadata.labels = { owner: 'data' }
      configuration.job_body.metadata.annotations['run.googleapis.com/client-name'] = 'prefect'
      configuration.job_body.spec.template.metadata.annotations['run.googleapis.com/execution-environment'] = 'gen2'
      configuration.job_body.spec.template.metadata.annotations['acme.com/note'] = 'kept'
      v1TaskSpec(configuration).containers[0].args = '--mode full'
      v1TaskSpec(configuration).maxRetries = 1
    }),
    deploymentJobVariables: { vpc_connector_name: 'etl-connector' }
  }
]
