// Renders a work pool's Cloud Run job template for one flow run exactly as Prefect's own
// `cloud-run-v2` / `cloud-run` worker would, so a pool behaves the same whether a Prefect worker or
// pushpool launches its runs. The steps live beside it in this folder; test/conformance/ checks them against
// Prefect's Python code.

import { randomBytes } from 'node:crypto'
import { TemplateError } from '../failures.ts'
import { isWholeFloat, toPlainJson } from '../prefect/exact-json.ts'
import { isPlainObject } from './templating.ts'
import type { V2Job } from './v2-job.ts'
import type { JobConfiguration, RenderRequest } from './types.ts'
import { convertV1JobToV2 } from './v1-to-v2.ts'
import { perRunJobName } from './names.ts'
import { renderPrefectWorkerJob } from './prefect-worker.ts'
import { validateJobVariables } from './validate-variables.ts'
import { checkGpuTimeout } from './gpu.ts'
import { impersonationTarget } from './impersonation.ts'

/** Cloud Run's task timeout when a job does not set one. */
const CLOUD_RUN_DEFAULT_TIMEOUT_SECONDS = 600

export async function renderJobConfiguration (req: RenderRequest): Promise<JobConfiguration> {
  await validateJobVariables(req.workPool.base_job_template, {
    deployment: req.deployment?.job_variables ?? null,
    flowRun: req.flowRun.job_variables
  }, req.lookups)
  const rendered = await renderPrefectWorkerJob(req)
  const jobName = perRunJobName(rendered.name, (req.randomSuffix ?? randomHexSuffix)())
  const credentials = rendered.credentials === null ? null : toPlainJson(rendered.credentials) as Record<string, unknown>
  const impersonateServiceAccount = impersonationTarget(rendered.variables)
  const common = { kind: rendered.kind, region: rendered.region, credentials, impersonateServiceAccount, keepJob: rendered.keepJob, jobName }
  const body = cloudRunNumbers(rendered.jobBody, 'job_configuration.job_body') as Record<string, unknown>
  if (rendered.kind === 'cloud-run-v2') {
    checkGpuTimeout(body as V2Job, rendered.timeout as number)
    return { ...common, timeoutSeconds: rendered.timeout as number, job: body as V2Job, warnings: rendered.warnings }
  }
  const { job, warnings } = convertV1JobToV2(body)
  const timeout = job.template.template.timeout
  const timeoutSeconds = timeout === undefined ? CLOUD_RUN_DEFAULT_TIMEOUT_SECONDS : Number.parseInt(timeout, 10)
  checkGpuTimeout(job, timeoutSeconds)
  return { ...common, timeoutSeconds, job, warnings: [...rendered.warnings, ...warnings] }
}

/**
 * The job body with JavaScript numbers, as the Cloud Run client takes it. A whole float becomes its
 * number. An integer beyond 2^53 can only sit where Prefect's worker would send a number to Cloud
 * Run (the text fields hold str() of it), and Cloud Run takes no integer that large, so Prefect's
 * launch would be refused: the render refuses it first, naming the field.
 */
function cloudRunNumbers (value: unknown, field: string): unknown {
  if (typeof value === 'bigint') {
    throw new TemplateError(field, `${field} is the integer ${value}, larger than any number Cloud Run accepts; fix the job variable or the work pool's base job template that sets it.`)
  }
  if (isWholeFloat(value)) return value.valueOf()
  if (Array.isArray(value)) return value.map((item, index) => cloudRunNumbers(item, `${field}[${index}]`))
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, cloudRunNumbers(item, `${field}.${key}`)]))
  return value
}

function randomHexSuffix (): string {
  return randomBytes(4).toString('hex').slice(0, 7)
}
