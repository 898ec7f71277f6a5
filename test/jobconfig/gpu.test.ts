// GPU jobs: a template asking for a GPU renders as Prefect's worker renders it and reaches Cloud
// Run (the emulator, through the real @google-cloud/run clients) with its accelerator, GPU limit
// and timeout intact, in both job modes; a GPU task timeout Cloud Run would refuse is refused
// before launch, with the fix.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { v2 } from '@google-cloud/run'
import { startEmulator, emulatorClientOptions } from '../../src/emulator/index.ts'
import { Launcher, DISPATCH_MARKER_ENV, type LaunchPlan } from '../../src/cloudrun/launcher.ts'
import { renderJobConfiguration } from '../../src/jobconfig/render.ts'
import { splitForReuse } from '../../src/jobconfig/reuse.ts'
import type { BaseJobTemplate } from '../../src/prefect/types.ts'
import { deploymentlessRequest } from './render-request.ts'
import { TemplateError } from '../../src/failures.ts'
import { loadTemplate } from '../conformance/fixtures.ts'

const PARENT = 'projects/proj-gpu/locations/us-central1'

/** prefect-gcp's template with the GPU settings a user adds: an accelerator, a GPU limit, 4 CPUs and 16 GiB. */
function gpuTemplate (): BaseJobTemplate {
  const template = loadTemplate('cloud-run-v2.default') as { job_configuration: Record<string, any>, variables: Record<string, any> }
  template.variables.properties.gpu_type = { type: 'string', default: 'nvidia-l4' }
  template.variables.properties.gpu_count = { type: 'string', default: '1' }
  template.variables.properties.cpu.default = '4000m'
  template.variables.properties.memory.default = '16Gi'
  const task = template.job_configuration.job_body.template.template
  task.nodeSelector = { accelerator: '{{ gpu_type }}' }
  task.gpuZonalRedundancyDisabled = true
  task.containers[0].resources.limits['nvidia.com/gpu'] = '{{ gpu_count }}'
  return template as BaseJobTemplate
}

t.test('a GPU job renders with its accelerator and limit, and reaches RunJob intact in both job modes', async t => {
  const config = await renderJobConfiguration(deploymentlessRequest(gpuTemplate(), { image: 'us-docker.pkg.dev/acme/train:1', timeout: 3600 }))
  const task = config.job.template.template
  t.same(task.nodeSelector, { accelerator: 'nvidia-l4' })
  t.equal(task.gpuZonalRedundancyDisabled, true)
  t.same(task.containers[0].resources?.limits, { cpu: '4000m', memory: '16Gi', 'nvidia.com/gpu': '1' })
  t.equal(task.timeout, '3600s')

  const emulator = await startEmulator({ executions: 'hold' })
  const options = { ...emulatorClientOptions(emulator.endpoint), projectId: 'proj-gpu' }
  const clients = { jobs: new v2.JobsClient(options), executions: new v2.ExecutionsClient(options), authClient: null }
  t.teardown(async () => {
    await Promise.all([clients.jobs.close(), clients.executions.close()])
    await emulator.close()
  })
  const launcher = new Launcher()
  const split = splitForReuse(config.job)
  const plans: LaunchPlan[] = [
    { mode: 'per-run', dispatchId: randomUUID(), jobName: `${PARENT}/jobs/${config.jobName}`, job: config.job, overrides: null, notBefore: new Date(Date.now() - 60_000) },
    {
      mode: 'reuse',
      dispatchId: randomUUID(),
      jobName: `${PARENT}/jobs/gpu-${split.specHash.slice(0, 12)}`,
      job: split.spec,
      overrides: { env: [...split.env, { name: DISPATCH_MARKER_ENV, value: 'd' }], timeoutSeconds: config.timeoutSeconds },
      notBefore: new Date(Date.now() - 60_000)
    }
  ]
  for (const plan of plans) {
    const launched = await launcher.launch(clients, plan, { maxAttempts: 1, executionMayExist: false })
    if (launched.kind !== 'launched') throw new Error(`${plan.mode}: the launch ended ${launched.kind}: ${launched.error.message}`)
    const [job] = await clients.jobs.getJob({ name: plan.jobName })
    const jobTask = job.template?.template
    t.equal(jobTask?.nodeSelector?.accelerator, 'nvidia-l4', `${plan.mode}: the job keeps its accelerator`)
    t.equal(jobTask?.gpuZonalRedundancyDisabled, true, `${plan.mode}: and its zonal redundancy setting`)
    t.same(jobTask?.containers?.[0].resources?.limits, { cpu: '4000m', memory: '16Gi', 'nvidia.com/gpu': '1' }, `${plan.mode}: and its GPU limit`)
    const [execution] = await clients.executions.getExecution({ name: launched.executionName })
    t.equal(execution.template?.nodeSelector?.accelerator, 'nvidia-l4', `${plan.mode}: the execution runs on the accelerator`)
    t.equal(Number(execution.template?.timeout?.seconds), 3600, `${plan.mode}: within the GPU timeout`)
  }
})

t.test('a GPU task timeout above Cloud Run\'s cap is refused before launch, naming the fix', async t => {
  await t.rejects(renderJobConfiguration(deploymentlessRequest(gpuTemplate(), { timeout: 7200, launch_stage: 'GA' })), new TemplateError('job_configuration.timeout',
    'The job runs on a GPU (accelerator nvidia-l4) with a task timeout of 7200 s, and Cloud Run stops GPU tasks after at most 3600 s (1 hour); ' +
    'set the timeout job variable to 3600 or less, or set launch_stage to BETA, under which Cloud Run lets GPU tasks run up to 43200 s (12 hours, a preview).'))
  await t.rejects(renderJobConfiguration(deploymentlessRequest(gpuTemplate(), { timeout: 50000, launch_stage: 'BETA' })), new TemplateError('job_configuration.timeout',
    'The job runs on a GPU (accelerator nvidia-l4) with a task timeout of 50000 s, and Cloud Run stops GPU tasks after at most 43200 s (12 hours in preview); ' +
    'set the timeout job variable to 43200 or less.'))
  const preview = await renderJobConfiguration(deploymentlessRequest(gpuTemplate(), { timeout: 7200 }))
  t.equal(preview.job.launchStage, 'BETA', 'prefect-gcp\'s template asks for BETA by default')
  t.equal(preview.timeoutSeconds, 7200, 'so a 2-hour GPU task is Cloud Run\'s preview to allow')
  const withoutSelector = gpuTemplate() as { job_configuration: Record<string, any> }
  delete withoutSelector.job_configuration.job_body.template.template.nodeSelector
  await t.rejects(renderJobConfiguration(deploymentlessRequest(withoutSelector as BaseJobTemplate, { timeout: 7200, launch_stage: 'GA' })), { message: /GPU \(nvidia\.com\/gpu limit 1\)/ })
  const cpuOnly = await renderJobConfiguration(deploymentlessRequest(loadTemplate('cloud-run-v2.default'), { timeout: 86400, launch_stage: 'GA' }))
  t.equal(cpuOnly.timeoutSeconds, 86400, 'a job without a GPU keeps Cloud Run\'s 7-day limit')
})
