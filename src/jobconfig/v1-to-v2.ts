// Converts a Cloud Run Admin API v1 (Knative-style) Job, as Prefect's `cloud-run` worker renders it,
// into the v2 Job body pushpool sends. Every v1 field either has a v2 home, is dropped with a
// warning that names it (v2 rejects labels and annotations in the run.googleapis.com,
// cloud.googleapis.com, serving.knative.dev and autoscaling.knative.dev namespaces; their
// meaning lives in v2 fields), or makes the conversion fail with a TemplateError naming the path,
// so nothing a pool asks for is lost silently.

import { TemplateError } from '../failures.ts'
import type { V2Container, V2EnvVar, V2Job, V2TaskTemplate } from './v2-job.ts'

export interface V1Conversion {
  job: V2Job
  warnings: string[]
}

type JsonObject = Record<string, unknown>

const FIELD_PREFIX = 'job_configuration.job_body'
const V2_REJECTED_NAMESPACES = ['run.googleapis.com/', 'cloud.googleapis.com/', 'serving.knative.dev/', 'autoscaling.knative.dev/']
const VPC_EGRESS: Readonly<Record<string, string>> = { 'all-traffic': 'ALL_TRAFFIC', 'private-ranges-only': 'PRIVATE_RANGES_ONLY' }
const EXECUTION_ENVIRONMENT: Readonly<Record<string, string>> = { gen1: 'EXECUTION_ENVIRONMENT_GEN1', gen2: 'EXECUTION_ENVIRONMENT_GEN2' }

const TASK_SPEC = 'spec.template.spec.template.spec'

export function convertV1JobToV2 (v1: JsonObject): V1Conversion {
  const warnings: string[] = []
  const body = fields(v1, '', ['apiVersion', 'kind', 'metadata', 'spec'])
  // metadata.name and metadata.namespace have no place in a v2 body: the job id is chosen per run
  // and the project comes from the credentials.
  const metadata = fields(body.metadata, 'metadata', ['name', 'namespace', 'labels', 'annotations'])
  const spec = fields(body.spec, 'spec', ['template'])
  const execution = fields(spec.template, 'spec.template', ['metadata', 'spec'])
  const executionMetadata = fields(execution.metadata ?? {}, 'spec.template.metadata', ['labels', 'annotations'])
  const executionSpec = fields(execution.spec, 'spec.template.spec', ['template', 'parallelism', 'taskCount'])
  const task = fields(executionSpec.template, 'spec.template.spec.template', ['spec'])

  const jobAnnotations = { ...stringMap(metadata.annotations, 'metadata.annotations') }
  const executionAnnotations = { ...stringMap(executionMetadata.annotations, 'spec.template.metadata.annotations') }
  const launchStage = takeAnnotation(jobAnnotations, 'run.googleapis.com/launch-stage')
  const taskTemplate = convertTaskTemplate(task.spec, executionAnnotations, warnings)

  const job: V2Job = { template: { template: taskTemplate } }
  if (launchStage !== undefined) job.launchStage = launchStage
  const labels = withoutRejected(stringMap(metadata.labels, 'metadata.labels'), 'metadata.labels', warnings)
  if (labels !== undefined) job.labels = labels
  const annotations = withoutRejected(jobAnnotations, 'metadata.annotations', warnings)
  if (annotations !== undefined) job.annotations = annotations
  const executionLabels = withoutRejected(stringMap(executionMetadata.labels, 'spec.template.metadata.labels'), 'spec.template.metadata.labels', warnings)
  if (executionLabels !== undefined) job.template.labels = executionLabels
  const executionAnnotationsLeft = withoutRejected(executionAnnotations, 'spec.template.metadata.annotations', warnings)
  if (executionAnnotationsLeft !== undefined) job.template.annotations = executionAnnotationsLeft
  const parallelism = integer(executionSpec.parallelism, 'spec.template.spec.parallelism')
  if (parallelism !== undefined) job.template.parallelism = parallelism
  const taskCount = integer(executionSpec.taskCount, 'spec.template.spec.taskCount')
  if (taskCount !== undefined) job.template.taskCount = taskCount
  return { job, warnings }
}

/** The v1 task spec, plus the execution annotations whose meaning v2 keeps in the task template (taken out of `annotations`). */
function convertTaskTemplate (value: unknown, annotations: Record<string, string>, warnings: string[]): V2TaskTemplate {
  const taskSpec = fields(value, TASK_SPEC, ['containers', 'volumes', 'timeoutSeconds', 'serviceAccountName', 'maxRetries'])
  const taskTemplate: V2TaskTemplate = {
    containers: list(taskSpec.containers, `${TASK_SPEC}.containers`).map((container, index) => convertContainer(container, `${TASK_SPEC}.containers[${index}]`))
  }
  if (taskSpec.volumes !== undefined) {
    taskTemplate.volumes = list(taskSpec.volumes, `${TASK_SPEC}.volumes`).map((volume, index) => convertVolume(volume, `${TASK_SPEC}.volumes[${index}]`))
  }
  const timeout = integer(taskSpec.timeoutSeconds, `${TASK_SPEC}.timeoutSeconds`)
  if (timeout !== undefined) taskTemplate.timeout = `${timeout}s`
  const serviceAccount = taskSpec.serviceAccountName
  if (serviceAccount !== undefined && serviceAccount !== null && serviceAccount !== '') {
    if (typeof serviceAccount !== 'string') throw incompatible(`${TASK_SPEC}.serviceAccountName`, 'must be a service account email')
    taskTemplate.serviceAccount = serviceAccount
  }
  const maxRetries = integer(taskSpec.maxRetries, `${TASK_SPEC}.maxRetries`)
  if (maxRetries !== undefined) taskTemplate.maxRetries = maxRetries

  const connector = takeAnnotation(annotations, 'run.googleapis.com/vpc-access-connector')
  const egress = takeAnnotation(annotations, 'run.googleapis.com/vpc-access-egress')
  if (connector !== undefined) {
    taskTemplate.vpcAccess = { connector }
    if (egress !== undefined) taskTemplate.vpcAccess.egress = enumValue(VPC_EGRESS, egress, 'spec.template.metadata.annotations["run.googleapis.com/vpc-access-egress"]')
  } else if (egress !== undefined) {
    warnings.push('Dropped annotation run.googleapis.com/vpc-access-egress: it has no effect without a VPC connector.')
  }
  const executionEnvironment = takeAnnotation(annotations, 'run.googleapis.com/execution-environment')
  if (executionEnvironment !== undefined) {
    taskTemplate.executionEnvironment = enumValue(EXECUTION_ENVIRONMENT, executionEnvironment, 'spec.template.metadata.annotations["run.googleapis.com/execution-environment"]')
  }
  return taskTemplate
}

/** Removes an annotation and returns its value; an empty value counts as unset. */
function takeAnnotation (annotations: Record<string, string>, key: string): string | undefined {
  const value = annotations[key]
  delete annotations[key]
  return value === '' ? undefined : value
}

function convertContainer (value: unknown, path: string): V2Container {
  const container = fields(value, path, ['name', 'image', 'command', 'args', 'env', 'resources', 'workingDir', 'ports', 'volumeMounts', 'livenessProbe', 'startupProbe'])
  const converted: V2Container = {}
  for (const key of ['name', 'image', 'command', 'args', 'workingDir', 'livenessProbe', 'startupProbe']) {
    if (container[key] !== undefined) converted[key] = container[key]
  }
  if (container.env !== undefined) converted.env = list(container.env, `${path}.env`).map((env, index) => convertEnv(env, `${path}.env[${index}]`))
  if (container.resources !== undefined) {
    // v2 has limits only; Prefect's v1 template sets requests equal to limits.
    const resources = fields(container.resources, `${path}.resources`, ['limits', 'requests'])
    converted.resources = { limits: stringMap(resources.limits, `${path}.resources.limits`) ?? {} }
  }
  if (container.ports !== undefined) {
    converted.ports = list(container.ports, `${path}.ports`).map((port, index) => {
      const { name, containerPort } = fields(port, `${path}.ports[${index}]`, ['name', 'containerPort', 'protocol'])
      return { ...(name === undefined ? {} : { name }), ...(containerPort === undefined ? {} : { containerPort }) }
    })
  }
  if (container.volumeMounts !== undefined) {
    converted.volumeMounts = list(container.volumeMounts, `${path}.volumeMounts`).map((mount, index) => {
      const { name, mountPath } = fields(mount, `${path}.volumeMounts[${index}]`, ['name', 'mountPath'])
      if (typeof name !== 'string' || typeof mountPath !== 'string') throw incompatible(`${path}.volumeMounts[${index}]`, 'needs a name and a mountPath')
      return { name, mountPath }
    })
  }
  return converted
}

/** v1 `valueFrom.secretKeyRef{name, key}` (key = secret version) → v2 `valueSource.secretKeyRef{secret, version}`. */
function convertEnv (value: unknown, path: string): V2EnvVar {
  const env = fields(value, path, ['name', 'value', 'valueFrom'])
  if (typeof env.name !== 'string') throw incompatible(`${path}.name`, 'must be the variable\'s name')
  if (env.valueFrom === undefined) {
    if (env.value !== undefined && env.value !== null && typeof env.value !== 'string') throw incompatible(`${path}.value`, 'must be a string')
    return env.value == null ? { name: env.name } : { name: env.name, value: env.value }
  }
  const valueFrom = fields(env.valueFrom, `${path}.valueFrom`, ['secretKeyRef'])
  const reference = fields(valueFrom.secretKeyRef, `${path}.valueFrom.secretKeyRef`, ['name', 'key'])
  if (typeof reference.name !== 'string' || typeof reference.key !== 'string') {
    throw incompatible(`${path}.valueFrom.secretKeyRef`, 'needs a secret name and a key (the secret version, e.g. "latest")')
  }
  return { name: env.name, valueSource: { secretKeyRef: { secret: reference.name, version: reference.key } } }
}

function convertVolume (value: unknown, path: string): Record<string, unknown> {
  const volume = fields(value, path, ['name', 'secret', 'emptyDir', 'nfs'])
  if (volume.secret === undefined) return volume
  const secret = fields(volume.secret, `${path}.secret`, ['secretName', 'items', 'defaultMode'])
  const converted: JsonObject = { secret: secret.secretName }
  if (secret.items !== undefined) {
    converted.items = list(secret.items, `${path}.secret.items`).map((item, index) => {
      const { key, path: filePath, mode } = fields(item, `${path}.secret.items[${index}]`, ['key', 'path', 'mode'])
      return { ...(key === undefined ? {} : { version: key }), ...(filePath === undefined ? {} : { path: filePath }), ...(mode === undefined ? {} : { mode }) }
    })
  }
  if (secret.defaultMode !== undefined) converted.defaultMode = secret.defaultMode
  return { name: volume.name, secret: converted }
}

function fields (value: unknown, path: string, known: string[]): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw incompatible(path, 'must be an object')
  const unknown = Object.keys(value).filter(key => !known.includes(key))
  if (unknown.length > 0) {
    throw incompatible(path === '' ? unknown[0] : `${path}.${unknown[0]}`, 'has no Cloud Run v2 equivalent that pushpool can convert; remove it, or move the pool to the cloud-run-v2 type and express it there')
  }
  return value as JsonObject
}

function list (value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw incompatible(path, 'must be a list')
  return value
}

function stringMap (value: unknown, path: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) throw incompatible(path, 'must be an object of strings')
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw incompatible(`${path}["${key}"]`, 'must be a string')
  }
  return value as Record<string, string>
}

/** An integer, or a string of digits as Knative accepts; null and absence both mean "unset". */
function integer (value: unknown, path: string): number | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'number' && Number.isInteger(value)) return value
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) return Number(value.trim())
  throw incompatible(path, 'must be a whole number')
}

function enumValue (mapping: Readonly<Record<string, string>>, value: string, path: string): string {
  const converted = mapping[value.toLowerCase()]
  if (converted === undefined) throw incompatible(path, `must be one of ${Object.keys(mapping).join(', ')}`)
  return converted
}

function withoutRejected (map: Record<string, string> | undefined, path: string, warnings: string[]): Record<string, string> | undefined {
  if (map === undefined) return undefined
  const kept: Record<string, string> = {}
  for (const [key, value] of Object.entries(map)) {
    if (V2_REJECTED_NAMESPACES.some(namespace => key.startsWith(namespace))) {
      warnings.push(`Dropped ${path} key ${key}: the Cloud Run v2 API rejects the ${key.slice(0, key.indexOf('/') + 1)} namespace.`)
    } else {
      kept[key] = value
    }
  }
  return Object.keys(kept).length === 0 ? undefined : kept
}

function incompatible (path: string, problem: string): TemplateError {
  const field = path === '' ? FIELD_PREFIX : `${FIELD_PREFIX}.${path}`
  return new TemplateError(field, `The cloud-run (v1) job body's ${path === '' ? 'root' : path} ${problem}.`)
}
