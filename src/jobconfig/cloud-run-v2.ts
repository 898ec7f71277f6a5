// prefect-gcp's `cloud-run-v2` worker: its job-configuration model
// (CloudRunWorkerJobV2Configuration) and its `prepare_for_flow_run` steps, in Prefect's order
// (prefect_gcp/workers/cloud_run_v2.py).

import { TemplateError } from '../failures.ts'
import { mergeLabelsForGcp } from './labels.ts'
import { isPlainObject } from './templating.ts'
import { readBaseConfiguration, type BaseConfiguration, type PreparedForFlowRun } from './base-configuration.ts'
import { firstContainer, formatArgs, populateImage, populateOrFormatCommand, type ImageDefaults } from './container-steps.ts'
import {
  readBoolean, readCredentials, readInteger, readLabelObject, readOptionalSecretKeySelector, readOptionalStringList,
  readSecretKeySelectorMap, readString, type Configuration, type SecretKeySelector
} from './fields.ts'
import { readJobBody } from './job-body-shape.ts'
import { pythonTruthy } from './python.ts'
import { plaintextCredentialWarnings, type SecretBacked } from './plaintext-credentials.ts'

export interface CloudRunV2Configuration extends BaseConfiguration {
  credentials: Record<string, unknown> | null
  envFromSecrets: Record<string, SecretKeySelector>
  prefectApiKeySecret: SecretKeySelector | null
  prefectApiAuthStringSecret: SecretKeySelector | null
  cloudsqlInstances: string[] | null
  jobBody: Record<string, unknown>
  keepJob: boolean
  region: string
  timeout: number
}

const CONTAINERS = 'job_configuration.job_body.template.template.containers'

export function readCloudRunV2Configuration (configuration: Configuration): CloudRunV2Configuration {
  const jobBody = readJobBody(configuration, { template: { template: { containers: [] } } }, 'cloud-run-v2')
  return {
    ...readBaseConfiguration(configuration),
    credentials: readCredentials(configuration, false),
    envFromSecrets: readSecretKeySelectorMap(configuration, 'env_from_secrets'),
    prefectApiKeySecret: readOptionalSecretKeySelector(configuration, 'prefect_api_key_secret'),
    prefectApiAuthStringSecret: readOptionalSecretKeySelector(configuration, 'prefect_api_auth_string_secret'),
    cloudsqlInstances: readOptionalStringList(configuration, 'cloudsql_instances'),
    jobBody,
    keepJob: readBoolean(configuration, 'keep_job', { fallback: false, nullable: false }) as boolean,
    region: readString(configuration, 'region', 'us-central1'),
    timeout: readInteger(configuration, 'timeout', { fallback: 600, nullable: false, greaterThan: 0, atMost: 604800 }) as number
  }
}

/** Runs the worker's steps on `config.jobBody` (in place) and returns the warnings Prefect would log. */
export function prepareCloudRunV2Job (config: CloudRunV2Configuration, prepared: PreparedForFlowRun, image: ImageDefaults): string[] {
  const body = config.jobBody
  const taskTemplate = (body.template as Record<string, unknown>).template as Record<string, unknown>
  const container = firstContainer(taskTemplate.containers, CONTAINERS)
  const containerField = `${CONTAINERS}[0]`

  const secretBacked: SecretBacked = {
    PREFECT_API_KEY: config.prefectApiKeySecret !== null || Object.hasOwn(config.envFromSecrets, 'PREFECT_API_KEY'),
    PREFECT_API_AUTH_STRING: config.prefectApiAuthStringSecret !== null || Object.hasOwn(config.envFromSecrets, 'PREFECT_API_AUTH_STRING')
  }
  populateEnv(container, config, prepared.env, secretBacked, containerField)
  populateLabels(body, prepared.labels)
  const warnings = plaintextCredentialWarnings(prepared.env, secretBacked, true)
  configureCloudSqlVolumes(taskTemplate, container, config.cloudsqlInstances, containerField)
  populateOrFormatCommand(container, containerField)
  formatArgs(container, containerField)
  populateImage(container, image)
  taskTemplate.timeout = `${config.timeout}s`
  removeVpcAccessIfUnset(taskTemplate)
  return warnings
}

/** The env as `{name, value}` pairs, then Secret Manager references; a plaintext API key or auth string is dropped when a secret replaces it. */
function populateEnv (container: Record<string, unknown>, config: CloudRunV2Configuration, env: Record<string, string>, secretBacked: SecretBacked, field: string): void {
  if (!Array.isArray(container.env)) {
    throw new TemplateError(`${field}.env`, `${field}.env must be a list, which Prefect's cloud-run-v2 worker appends the flow run's environment to; add "env": [] to the container in the work pool's base job template.`)
  }
  const fromSecret = (name: string, selector: SecretKeySelector): Record<string, unknown> =>
    ({ name, valueSource: { secretKeyRef: { secret: selector.secret, version: selector.version } } })
  container.env.push(
    ...Object.entries(env).filter(([name]) => !(secretBacked as Record<string, boolean>)[name]).map(([name, value]) => ({ name, value })),
    ...Object.entries(config.envFromSecrets).map(([name, selector]) => fromSecret(name, selector))
  )
  if (config.prefectApiKeySecret !== null) container.env.push(fromSecret('PREFECT_API_KEY', config.prefectApiKeySecret))
  if (config.prefectApiAuthStringSecret !== null) container.env.push(fromSecret('PREFECT_API_AUTH_STRING', config.prefectApiAuthStringSecret))
}

/** Sanitised Prefect labels on the job and on its execution template, so executions kept after the job is deleted carry them too. */
function populateLabels (body: Record<string, unknown>, labels: Record<string, string>): void {
  body.labels = mergeLabelsForGcp(labels, readLabelObject(body.labels, 'job_configuration.job_body.labels'))
  const executionTemplate = body.template as Record<string, unknown>
  executionTemplate.labels = mergeLabelsForGcp(labels, readLabelObject(executionTemplate.labels, 'job_configuration.job_body.template.labels'))
}

function configureCloudSqlVolumes (taskTemplate: Record<string, unknown>, container: Record<string, unknown>, instances: string[] | null, field: string): void {
  if (instances === null || instances.length === 0) return
  if (!Object.hasOwn(taskTemplate, 'volumes')) taskTemplate.volumes = []
  if (!Object.hasOwn(container, 'volumeMounts')) container.volumeMounts = []
  if (!Array.isArray(taskTemplate.volumes) || !Array.isArray(container.volumeMounts)) {
    throw new TemplateError(`${field}.volumeMounts`, 'The job body\'s volumes and the container\'s volumeMounts must be lists for the Cloud SQL volume to be added; fix the work pool\'s base job template.')
  }
  taskTemplate.volumes.push({ name: 'cloudsql', cloudSqlInstance: { instances } })
  container.volumeMounts.push({ name: 'cloudsql', mountPath: '/cloudsql' })
}

/** An empty `vpcAccess`, or one whose only key is a null connector, is dropped: Cloud Run rejects it. */
function removeVpcAccessIfUnset (taskTemplate: Record<string, unknown>): void {
  if (!Object.hasOwn(taskTemplate, 'vpcAccess')) return
  const vpcAccess = taskTemplate.vpcAccess
  const onlyNullConnector = isPlainObject(vpcAccess) && Object.keys(vpcAccess).length === 1 && vpcAccess.connector === null
  if (!pythonTruthy(vpcAccess) || onlyNullConnector) delete taskTemplate.vpcAccess
}
