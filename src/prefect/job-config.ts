// Renders a work pool's Cloud Run job template for one flow run exactly as Prefect's own
// `cloud-run-v2` / `cloud-run` worker would, so a pool behaves the same whether a Prefect worker or
// pushpool launches its runs. The steps live in ./render/; test/conformance/ checks them against
// Prefect's Python code.

import { randomBytes } from 'node:crypto'
import type { BlockDocument, Deployment, Flow, FlowRun, WorkPool } from './types.ts'
import type { V2Job } from '../cloudrun/v2-job.ts'
import { convertV1JobToV2 } from '../cloudrun/v1.ts'
import { perRunJobName } from '../cloudrun/names.ts'
import { renderPrefectWorkerJob } from './render/prefect-worker.ts'
import { validateJobVariables } from './render/validate-variables.ts'

/**
 * The Prefect API reads rendering needs, answering null (a variable: undefined) for what does not
 * exist, as PrefectClient does. The renderer words every failure itself, naming the field that
 * refers to the object and the fix; a lookup that fails with RetryLater (an outage) is passed on.
 */
export interface PrefectLookups {
  readBlockDocument(id: string): Promise<BlockDocument | null> // include_secrets=true
  readBlockDocumentByName(typeSlug: string, name: string): Promise<BlockDocument | null>
  readVariable(name: string): Promise<unknown> // undefined when absent
}

export interface RenderRequest {
  workPool: WorkPool
  deployment: Deployment | null
  flowRun: FlowRun
  flow: Flow | null
  lookups: PrefectLookups
  /** What Prefect's worker process would pass down from its own settings (BaseJobConfiguration._base_environment):
   *  e.g. PREFECT_API_URL and PREFECT_API_AUTH_STRING or PREFECT_API_KEY. */
  baseEnvironment: Record<string, string>
  workerName: string // e.g. 'pushpool'
  workerId?: string
  prefectVersion: string // for the default image tag, e.g. '3.8.8'
  pythonVersion?: string // default '3.12'
  randomSuffix?: () => string // 7 hex chars for the per-run job name; injectable for tests
}

export interface JobConfiguration {
  kind: 'cloud-run-v2' | 'cloud-run'
  region: string
  credentials: Record<string, unknown> | null // the resolved GcpCredentials block data (service_account_info, project, ...) or null → ADC
  keepJob: boolean
  timeoutSeconds: number
  jobName: string // Prefect's per-run job id: slug (≤55) + '-' + 7 hex (v2 rule)
  job: V2Job // the Cloud Run v2 Job body exactly as Prefect's v2 worker would send it (v1 pools: converted)
  warnings: string[] // e.g. v1 labels/annotations dropped for the v2 API, plaintext credential warnings
}

/** Cloud Run's task timeout when a job does not set one. */
const CLOUD_RUN_DEFAULT_TIMEOUT_SECONDS = 600

export async function renderJobConfiguration (req: RenderRequest): Promise<JobConfiguration> {
  await validateJobVariables(req.workPool.base_job_template, {
    deployment: req.deployment?.job_variables ?? null,
    flowRun: req.flowRun.job_variables
  }, req.lookups)
  const rendered = await renderPrefectWorkerJob(req)
  const jobName = perRunJobName(rendered.name, (req.randomSuffix ?? randomHexSuffix)())
  const common = { kind: rendered.kind, region: rendered.region, credentials: rendered.credentials, keepJob: rendered.keepJob, jobName }
  if (rendered.kind === 'cloud-run-v2') {
    return { ...common, timeoutSeconds: rendered.timeout as number, job: rendered.jobBody as V2Job, warnings: rendered.warnings }
  }
  const { job, warnings } = convertV1JobToV2(rendered.jobBody)
  const timeout = job.template.template.timeout
  return {
    ...common,
    timeoutSeconds: timeout === undefined ? CLOUD_RUN_DEFAULT_TIMEOUT_SECONDS : Number.parseInt(timeout, 10),
    job,
    warnings: [...rendered.warnings, ...warnings]
  }
}

function randomHexSuffix (): string {
  return randomBytes(4).toString('hex').slice(0, 7)
}
