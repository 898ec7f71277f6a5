// prefect-gcp's `cloud-run` (v1, Knative-style) worker: its job-configuration model
// (CloudRunWorkerJobConfiguration) and its `prepare_for_flow_run` steps, in Prefect's order
// (prefect_gcp/workers/cloud_run.py). pushpool then converts the result to a v2 Job
// (v1-to-v2.ts), because it only speaks the v2 API.
//
// One step is left out: when the template has no `metadata.name`, Prefect's v1 worker names the
// job slug(30) + "-" + a 32-hex uuid. pushpool never sends that v1 name; the v2 job id is
// `perRunJobName` (names.ts).

import { TemplateError } from '../failures.ts'
import { mergeLabelsForGcp } from './labels.ts'
import { isPlainObject } from './templating.ts'
import { readBaseConfiguration, type BaseConfiguration, type PreparedForFlowRun } from './base-configuration.ts'
import { firstContainer, formatArgs, populateImage, populateOrFormatCommand, type ImageDefaults } from './container-steps.ts'
import {
  readBoolean, readCredentials, readInteger, readLabelObject, readOptionalSecretKeySelector, readString,
  type Configuration, type SecretKeySelector
} from './fields.ts'
import { readJobBody } from './job-body-shape.ts'
import { plaintextCredentialWarnings } from './plaintext-credentials.ts'

export interface CloudRunV1Configuration extends BaseConfiguration {
  credentials: Record<string, unknown> | null
  prefectApiKeySecret: SecretKeySelector | null
  prefectApiAuthStringSecret: SecretKeySelector | null
  jobBody: Record<string, unknown>
  keepJob: boolean | null
  region: string
  timeout: number | null
}

const MINIMAL_V1_JOB = {
  apiVersion: 'run.googleapis.com/v1',
  kind: 'Job',
  metadata: { annotations: { 'run.googleapis.com/launch-stage': 'BETA' } },
  spec: { template: { spec: { template: { spec: { containers: [{}] } } } } }
}

const CONTAINERS = 'job_configuration.job_body.spec.template.spec.template.spec.containers'

export function readCloudRunV1Configuration (configuration: Configuration): CloudRunV1Configuration {
  const jobBody = readJobBody(configuration, MINIMAL_V1_JOB, 'cloud-run')
  return {
    ...readBaseConfiguration(configuration),
    credentials: readCredentials(configuration, true),
    prefectApiKeySecret: readOptionalSecretKeySelector(configuration, 'prefect_api_key_secret'),
    prefectApiAuthStringSecret: readOptionalSecretKeySelector(configuration, 'prefect_api_auth_string_secret'),
    jobBody,
    keepJob: readBoolean(configuration, 'keep_job', { fallback: false, nullable: true }),
    region: readString(configuration, 'region', 'us-central1'),
    timeout: readInteger(configuration, 'timeout', { fallback: 600, nullable: true, greaterThan: 0, atMost: 3600 })
  }
}

/** Runs the worker's steps on `config.jobBody` (in place) and returns the warnings Prefect would log. */
export function prepareCloudRunV1Job (config: CloudRunV1Configuration, prepared: PreparedForFlowRun, image: ImageDefaults): string[] {
  const body = config.jobBody
  const execution = (body.spec as Record<string, unknown>).template as Record<string, unknown>
  const taskSpec = ((execution.spec as Record<string, unknown>).template as Record<string, unknown>).spec as Record<string, unknown>
  const container = firstContainer(taskSpec.containers, CONTAINERS)
  const containerField = `${CONTAINERS}[0]`

  container.env = populatedEnv(config, prepared.env)
  populateLabels(body, execution, prepared.labels)
  const warnings = plaintextCredentialWarnings(prepared.env, {
    PREFECT_API_KEY: config.prefectApiKeySecret !== null,
    PREFECT_API_AUTH_STRING: config.prefectApiAuthStringSecret !== null
  }, false)
  populateOrFormatCommand(container, containerField)
  formatArgs(container, containerField)
  populateImage(container, image)
  return warnings
}

/** The env replaces the container's; a secret-backed API key or auth string becomes a v1 `valueFrom.secretKeyRef` ({name: secret, key: version}). */
function populatedEnv (config: CloudRunV1Configuration, env: Record<string, string>): Array<Record<string, unknown>> {
  const plain = { ...env }
  if (config.prefectApiKeySecret !== null) delete plain.PREFECT_API_KEY
  if (config.prefectApiAuthStringSecret !== null) delete plain.PREFECT_API_AUTH_STRING
  const entries: Array<Record<string, unknown>> = Object.entries(plain).map(([name, value]) => ({ name, value }))
  const fromSecret = (name: string, selector: SecretKeySelector): Record<string, unknown> =>
    ({ name, valueFrom: { secretKeyRef: { name: selector.secret, key: selector.version } } })
  if (config.prefectApiKeySecret !== null) entries.push(fromSecret('PREFECT_API_KEY', config.prefectApiKeySecret))
  if (config.prefectApiAuthStringSecret !== null) entries.push(fromSecret('PREFECT_API_AUTH_STRING', config.prefectApiAuthStringSecret))
  return entries
}

function populateLabels (body: Record<string, unknown>, execution: Record<string, unknown>, labels: Record<string, string>): void {
  const metadata = body.metadata as Record<string, unknown>
  metadata.labels = mergeLabelsForGcp(labels, readLabelObject(metadata.labels, 'job_configuration.job_body.metadata.labels'))
  if (!Object.hasOwn(execution, 'metadata')) execution.metadata = {}
  const executionMetadata = execution.metadata
  if (!isPlainObject(executionMetadata)) {
    throw new TemplateError('job_configuration.job_body.spec.template.metadata', 'The job body\'s spec.template.metadata must be an object; fix the work pool\'s base job template.')
  }
  executionMetadata.labels = mergeLabelsForGcp(labels, readLabelObject(executionMetadata.labels, 'job_configuration.job_body.spec.template.metadata.labels'))
}
