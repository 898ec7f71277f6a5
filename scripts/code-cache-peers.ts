// The peers of the code cache's training run (scripts/code-cache.ts), all on loopback in the
// training process: the Prefect stand-in (src/devstack/prefect-standin.ts), serving one cloud-run-v2
// work pool with the template `pushpool setup` installs and a GCP Credentials block holding a
// throw-away key, and the emulator, for Cloud Run and for the Cloud Tasks queue of the deployed
// setting's timers. With them the training's webhooks take one flow run through a whole dispatch
// (the reads, Pending, the render, the credentials' JWT, CreateJob and RunJob over gRPC), and
// another, not yet due, through its timer (a Cloud Tasks task, delivered with an OIDC token to the
// timer route, which drives it), so that the code a cold instance's first dispatch or first timer
// runs is compiled and cached too, not only its start-up. The build has no Prefect server at hand,
// hence the stand-in.
import { randomUUID } from 'node:crypto'
import { v2 } from '@google-cloud/tasks'
import { DEFAULT_PREFECT_PACKAGES } from '../src/devstack/venv.ts'
import { startPrefectStandIn, type StandInSeed } from '../src/devstack/prefect-standin.ts'
import { serviceAccountKey } from '../src/devstack/service-account-key.ts'
import { emulatorClientOptions, startEmulator } from '../src/emulator/index.ts'
import { defaultCloudRunV2Template } from '../src/setup/work-pool.ts'

const POOL = 'code-cache-training'
const PROJECT = 'code-cache-training'
const LOCATION = `projects/${PROJECT}/locations/us-central1`

export interface TrainingPeers {
  prefectApiUrl: string
  cloudRunEndpoint: string
  /** The work pool pushpool is to serve. */
  pool: string
  /** A new flow run of the pool's deployment, Scheduled now or at `at`. */
  newFlowRun: (at?: Date) => string
  /** Where pushpool arms its timers, and who Cloud Tasks calls it as. */
  timers: { queue: string, invoker: string, tasksEndpoint: string, certsUrl: string }
  /** Resolves once every timer armed so far has been delivered, with how many the timer route answered 2xx. */
  timersDelivered: () => Promise<number>
  /** The executions Cloud Run holds. */
  executions: () => number
}

export async function startTrainingPeers (): Promise<TrainingPeers> {
  const emulator = await startEmulator({ executions: 'hold' })
  try {
    const queue = `${LOCATION}/queues/pushpool-timers`
    const tasks = new v2.CloudTasksClient({ ...emulatorClientOptions(emulator.endpoint), projectId: PROJECT })
    await tasks.createQueue({ parent: LOCATION, queue: { name: queue } }).finally(() => tasks.close())
    // Both stay up until the training process exits, once the cache is written.
    const prefect = await startPrefectStandIn(trainingSeed())
    return {
      prefectApiUrl: prefect.apiUrl,
      cloudRunEndpoint: emulator.endpoint,
      pool: POOL,
      newFlowRun: at => prefect.createFlowRuns(1, at)[0],
      timers: { queue, invoker: `pushpool-invoker@${PROJECT}.iam.gserviceaccount.com`, tasksEndpoint: emulator.endpoint, certsUrl: emulator.certsUrl },
      timersDelivered: async () => {
        // Those still waiting, and those delivered already.
        const names = new Set([...emulator.tasks().map(task => task.name), ...emulator.taskDeliveries().map(delivery => delivery.task)])
        const ends = await Promise.all([...names].map(name => emulator.waitForTask(name)))
        return ends.filter(end => end.outcome === 'succeeded').length
      },
      executions: () => emulator.executions().length
    }
  } catch (err) {
    await emulator.close()
    throw err
  }
}

/** The objects a dispatch reads, shaped as Prefect serves them (the fields pushpool reads, and their neighbours). */
function trainingSeed (): StandInSeed {
  const [poolId, queueId, deploymentId, flowId, blockId, runId, stateId] = Array.from({ length: 7 }, () => randomUUID())
  const now = new Date().toISOString()
  const template = defaultCloudRunV2Template()
  template.variables.properties!.credentials.default = { $ref: { block_document_id: blockId } }
  const version = DEFAULT_PREFECT_PACKAGES.find(spec => spec.startsWith('prefect=='))!.slice('prefect=='.length)
  return {
    version,
    workPool: {
      id: poolId, created: now, updated: now, name: POOL, description: null, type: 'cloud-run-v2',
      base_job_template: template, is_paused: false, concurrency_limit: null, status: 'READY', default_queue_id: queueId
    },
    workQueue: {
      id: queueId, created: now, updated: now, name: 'default', description: null, is_paused: false, concurrency_limit: null,
      priority: 1, work_pool_id: poolId, filter: null, last_polled: null, work_pool_name: POOL, status: 'READY'
    },
    deployment: {
      id: deploymentId, created: now, updated: now, name: 'training', version: null, description: null, flow_id: flowId,
      paused: false, schedules: [], concurrency_limit: null, job_variables: {}, parameters: {}, tags: [], labels: {},
      work_queue_name: 'default', work_queue_id: queueId, pull_steps: null, entrypoint: 'flows/training.py:training',
      work_pool_name: POOL, status: 'READY', enforce_parameter_schema: true
    },
    flow: { id: flowId, created: now, updated: now, name: 'training', tags: [], labels: {} },
    flowRun: {
      id: runId, created: now, updated: now, name: 'training-run', flow_id: flowId, state_id: stateId,
      deployment_id: deploymentId, work_queue_id: queueId, work_queue_name: 'default', parameters: {}, context: {},
      empirical_policy: { max_retries: 0, retry_delay_seconds: 0, retries: null, retry_delay: null, pause_keys: [], resuming: false },
      tags: [], labels: { 'prefect.flow.id': flowId, 'prefect.deployment.id': deploymentId }, state_type: 'SCHEDULED',
      state_name: 'Scheduled', run_count: 0, expected_start_time: now, next_scheduled_start_time: now, start_time: null,
      end_time: null, infrastructure_pid: null, work_pool_id: poolId, work_pool_name: POOL, job_variables: {},
      state: {
        id: stateId, type: 'SCHEDULED', name: 'Scheduled', timestamp: now, message: null, data: null,
        state_details: { flow_run_id: runId, scheduled_time: now, deferred: false }
      }
    },
    blockDocuments: [{
      id: blockId, created: now, updated: now, name: `${POOL}-gcp`,
      data: { service_account_info: serviceAccountKey(PROJECT), project: PROJECT },
      block_type_name: 'GCP Credentials', block_type: { slug: 'gcp-credentials', name: 'GCP Credentials' }, is_anonymous: false
    }]
  }
}
