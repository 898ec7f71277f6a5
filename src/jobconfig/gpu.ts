// GPU jobs: Cloud Run runs a task on a GPU when its template selects an accelerator
// (`nodeSelector: {accelerator: "nvidia-l4"}`) and the container asks for `nvidia.com/gpu`, and
// it stops a GPU task sooner than others: "For tasks using GPUs, the maximum available timeout is
// 1 hour" (https://cloud.google.com/run/docs/configuring/task-timeout), and up to 12 hours as a
// preview ("Long running GPU jobs", same page), which a job opts into with a preview launch stage.
// Prefect's worker sends a longer timeout as it is and Cloud Run refuses the job; pushpool refuses
// it before launch, saying which setting to change.

import { TemplateError } from '../failures.ts'
import type { V2Job } from './v2-job.ts'

const GPU_LIMIT = 'nvidia.com/gpu'
const GA_MAX_SECONDS = 3600
const PREVIEW_MAX_SECONDS = 12 * 3600
// "Set the launch stage to a preview stage on input to allow use of preview features in that stage."
const PREVIEW_STAGES = new Set(['ALPHA', 'BETA'])

export const GPU_TIMEOUT_FIELD = 'job_configuration.timeout'

/** What makes the job a GPU job, for the message; null when it asks for no GPU. */
function gpuRequest (job: V2Job): string | null {
  const task = job.template.template
  const accelerator: unknown = task.nodeSelector?.accelerator
  if (typeof accelerator === 'string' && accelerator !== '') return `accelerator ${accelerator}`
  const limited = task.containers.find(container => container.resources?.limits?.[GPU_LIMIT] !== undefined)
  return limited === undefined ? null : `${GPU_LIMIT} limit ${limited.resources?.limits?.[GPU_LIMIT]}`
}

/** Refuses a GPU job whose task timeout Cloud Run would refuse. */
export function checkGpuTimeout (job: V2Job, timeoutSeconds: number): void {
  const gpu = gpuRequest(job)
  if (gpu === null) return
  const preview = PREVIEW_STAGES.has(job.launchStage ?? 'GA')
  const max = preview ? PREVIEW_MAX_SECONDS : GA_MAX_SECONDS
  if (timeoutSeconds <= max) return
  const fix = preview
    ? `set the timeout job variable to ${max} or less`
    : `set the timeout job variable to ${max} or less, or set launch_stage to BETA, under which Cloud Run lets GPU tasks run up to ${PREVIEW_MAX_SECONDS} s (12 hours, a preview)`
  throw new TemplateError(GPU_TIMEOUT_FIELD,
    `The job runs on a GPU (${gpu}) with a task timeout of ${timeoutSeconds} s, and Cloud Run stops GPU tasks after at most ${max} s (${max / 3600} hour${max === 3600 ? '' : 's'}${preview ? ' in preview' : ''}); ${fix}.`)
}
