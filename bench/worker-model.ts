// The Cloud Run Admin API calls Prefect's own cloud-run-v2 worker makes for one flow run, replayed
// against the emulator with the same Google client library pushpool uses. The real worker cannot be
// pointed at the emulator: it uses the REST discovery client (googleapiclient), the emulator speaks
// gRPC. The sequence is prefect-gcp 0.6.22's (the version in the repo's virtualenv), read from
// prefect_gcp/workers/cloud_run_v2.py and models/cloud_run_v2.py:
//   1. jobs.create                                  (_create_job_and_wait_for_registration)
//   2. jobs.get, then while not Ready: jobs.get + sleep 5 s   (_wait_for_job_creation)
//   3. jobs.get for the latest execution             (_snapshot_latest_execution_name)
//   4. jobs.run                                      (_begin_job_execution)
//   5. executions.get of the new execution
//   6. while running: executions.get + sleep 5 s     (_watch_job_execution)
//   7. unless keep_job: executions.list, executions.delete for each (sleep 3 s each), jobs.delete
import { setTimeout as sleep } from 'node:timers/promises'
import { v2 } from '@google-cloud/run'
import { emulatorClientOptions } from '../src/emulator/index.ts'

export interface WorkerModelOptions {
  endpoint: string
  project: string
  region: string
  jobId: string
  /** ms between polls; 5000 in prefect-gcp. */
  pollMs: number
  /** Called once RunJob named the execution, so the caller can end it after the run's length. */
  onExecution: (name: string) => void
}

export async function runWorkerModel (o: WorkerModelOptions): Promise<void> {
  const options = { projectId: o.project, ...emulatorClientOptions(o.endpoint) }
  const jobs = new v2.JobsClient(options)
  const executions = new v2.ExecutionsClient(options)
  try {
    const parent = `projects/${o.project}/locations/${o.region}`
    const name = `${parent}/jobs/${o.jobId}`
    await jobs.createJob({
      parent,
      jobId: o.jobId,
      job: { template: { template: { containers: [{ image: 'prefecthq/prefect:3-latest', command: ['prefect', 'flow-run', 'execute'] }], maxRetries: 0, timeout: { seconds: 600 } } } }
    })
    const ready = (job: { terminalCondition?: { state?: unknown } | null }): boolean =>
      job.terminalCondition?.state === 'CONDITION_SUCCEEDED' || job.terminalCondition?.state === 4
    let [job] = await jobs.getJob({ name })
    while (!ready(job)) {
      [job] = await jobs.getJob({ name })
      await sleep(o.pollMs)
    }
    await jobs.getJob({ name }) // snapshot of latestCreatedExecution
    const [operation] = await jobs.runJob({ name })
    const executionName = (operation.metadata as { name: string }).name
    o.onExecution(executionName)
    let [execution] = await executions.getExecution({ name: executionName })
    while (execution.completionTime === null || execution.completionTime === undefined) {
      [execution] = await executions.getExecution({ name: executionName })
      await sleep(o.pollMs)
    }
    const [list] = await executions.listExecutions({ parent: name }, { autoPaginate: false })
    for (const e of list) {
      await executions.deleteExecution({ name: e.name ?? '' })
      await sleep(3000)
    }
    await jobs.deleteJob({ name })
  } finally {
    await Promise.all([jobs.close(), executions.close()])
  }
}
