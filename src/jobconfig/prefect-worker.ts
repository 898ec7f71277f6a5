// Everything Prefect's Cloud Run worker computes for a flow run before it calls Google: the job
// variables merged, the pool template rendered, the worker's model read, and
// `prepare_for_flow_run` applied. The result is the job body Prefect would send (v2, or v1 for
// `cloud-run` pools) and the configuration around it.

import { TemplateError } from '../failures.ts'
import type { RenderRequest } from './types.ts'
import { prepareForFlowRun } from './base-configuration.ts'
import { prepareCloudRunV1Job, readCloudRunV1Configuration } from './cloud-run-v1.ts'
import { prepareCloudRunV2Job, readCloudRunV2Configuration } from './cloud-run-v2.ts'
import { mergeJobVariables, populateJobConfiguration } from './populate.ts'

export type CloudRunPoolType = 'cloud-run-v2' | 'cloud-run'

export interface PrefectWorkerJob {
  kind: CloudRunPoolType
  /** The job body exactly as Prefect's worker would send it: a v2 Job, or a v1 Job for `cloud-run` pools. */
  jobBody: Record<string, unknown>
  /** The infrastructure name the job id is derived from. */
  name: string
  region: string
  credentials: Record<string, unknown> | null
  keepJob: boolean
  /** The configuration's `timeout`; null only where the v1 model allows it. */
  timeout: number | null
  env: Record<string, string>
  labels: Record<string, string>
  warnings: string[]
  /** The job variables the template was filled from (pool defaults, then the deployment's and the flow run's). */
  variables: Record<string, unknown>
}

const DEFAULT_PYTHON_VERSION = '3.12'

function isCloudRunPoolType (type: string): type is CloudRunPoolType {
  return type === 'cloud-run-v2' || type === 'cloud-run'
}

export async function renderPrefectWorkerJob (request: RenderRequest): Promise<PrefectWorkerJob> {
  const { workPool, deployment, flowRun, lookups } = request
  const kind = workPool.type
  if (!isCloudRunPoolType(kind)) {
    throw new TemplateError('work_pool.type', `Work pool '${workPool.name}' has type '${kind}'; pushpool runs only cloud-run-v2 and cloud-run pools.`)
  }
  const environmentPlaceholders = new Set<string>()
  const hooks = { onEnvironmentPlaceholder: (name: string) => { environmentPlaceholders.add(name) } }

  const values = mergeJobVariables(deployment?.job_variables ?? null, flowRun.job_variables)
  const { configuration, variables } = await populateJobConfiguration(workPool.base_job_template, values, lookups, hooks)
  const context = {
    flowRun,
    deployment,
    flow: request.flow,
    workPool,
    workerName: request.workerName,
    workerId: request.workerId,
    baseEnvironment: request.baseEnvironment,
    prefectVersion: request.prefectVersion
  }
  const image = { prefectVersion: request.prefectVersion, pythonVersion: request.pythonVersion ?? DEFAULT_PYTHON_VERSION }

  if (kind === 'cloud-run-v2') {
    const config = readCloudRunV2Configuration(configuration)
    const prepared = prepareForFlowRun(config, context, hooks)
    const warnings = [...environmentWarnings(environmentPlaceholders), ...prepareCloudRunV2Job(config, prepared, image)]
    return { kind, jobBody: config.jobBody, name: prepared.name, region: config.region, credentials: config.credentials, keepJob: config.keepJob, timeout: config.timeout, env: prepared.env, labels: prepared.labels, warnings, variables }
  }
  const config = readCloudRunV1Configuration(configuration)
  const prepared = prepareForFlowRun(config, context, hooks)
  const warnings = [...environmentWarnings(environmentPlaceholders), ...prepareCloudRunV1Job(config, prepared, image)]
  return { kind, jobBody: config.jobBody, name: prepared.name, region: config.region, credentials: config.credentials, keepJob: config.keepJob ?? false, timeout: config.timeout, env: prepared.env, labels: prepared.labels, warnings, variables }
}

function environmentWarnings (names: Set<string>): string[] {
  return [...names].map(name =>
    `The template placeholder {{ $${name} }} reads a Prefect worker's own environment; pushpool never exposes its environment and rendered it as an empty string. Pass the value as a job variable instead.`)
}
