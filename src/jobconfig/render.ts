// Renders a work pool's Cloud Run job template for one flow run exactly as Prefect's own
// `cloud-run-v2` / `cloud-run` worker would, so a pool behaves the same whether a Prefect worker or
// pushpool launches its runs. The steps live beside it in this folder; test/conformance/ checks them against
// Prefect's Python code.

import { randomBytes } from 'node:crypto'
import type { V2Job } from './v2-job.ts'
import type { JobConfiguration, RenderRequest } from './types.ts'
import { convertV1JobToV2 } from './v1-to-v2.ts'
import { perRunJobName } from './names.ts'
import { renderPrefectWorkerJob } from './prefect-worker.ts'
import { validateJobVariables } from './validate-variables.ts'

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
