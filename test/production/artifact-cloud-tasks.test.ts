// The artifact with Cloud Tasks timers, the deployed setting (cloudbuild.yaml): its server script
// holds only the part of @google-cloud/tasks that pushpool uses, v2's client and protos
// (scripts/build.ts: PACKAGE_PARTS, BUNDLED_READS), and with them a run not yet due becomes one task
// in the emulator's queue, delivered at its time to the timer route, which launches the run.
import t from 'tap'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { v2 } from '@google-cloud/tasks'
import { builtArtifact, temporaryDir } from './artifact.ts'
import { parentEnv, startService } from './service-process.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { executionsOf } from '../harness/scene.ts'
import { adminHeaders, deliverUntilPrefectAnswers, servingEnv, webhookHeaders, webhookPayload } from '../helper.ts'
import { emulatorClientOptions, startEmulator } from '../../src/emulator/index.ts'
import { findFreePort } from '../../src/devstack/prefect-server.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const LOCATION = 'projects/proj-artifact/locations/us-central1'
const QUEUE = `${LOCATION}/queues/pushpool-timers`
const INVOKER = 'pushpool-invoker@proj-artifact.iam.gserviceaccount.com'
/** Far enough ahead that the webhook has armed the timer before it is due, on a loaded machine too. */
const AHEAD_SECONDS = 20
const PREFETCH_SECONDS = 2

t.test('the artifact arms a run\'s timer on Cloud Tasks, and its delivery launches the run', async t => {
  const tasks = new v2.CloudTasksClient({ ...emulatorClientOptions(emulator.endpoint), projectId: 'proj-artifact' })
  t.teardown(() => tasks.close())
  await tasks.createQueue({ parent: LOCATION, queue: { name: QUEUE } })
  const dist = await builtArtifact(t)
  const dir = temporaryDir(t, 'pushpool-artifact-tasks-')
  const { pool, deploymentId } = await prefect.servedPool('artifact-tasks', 'proj-artifact')
  const port = await findFreePort()
  const server = await startService(t, {
    args: [join(dist, 'server.js')],
    port,
    env: {
      ...parentEnv(),
      ...servingEnv({ storeUrl: `sqlite:${join(dir, 'pushpool.db')}`, prefect: peers, pool, cloudRunEndpoint: emulator.endpoint }),
      PUSHPOOL_TIMERS: 'cloud-tasks',
      PUSHPOOL_TASKS_QUEUE: QUEUE,
      PUSHPOOL_TASKS_INVOKER: INVOKER,
      PUSHPOOL_TASKS_ENDPOINT: emulator.endpoint,
      PUSHPOOL_AUDIENCE: `http://127.0.0.1:${port}`,
      PUSHPOOL_GOOGLE_CERTS_URL: emulator.certsUrl,
      PUSHPOOL_PREFETCH_SECONDS: String(PREFETCH_SECONDS)
    }
  })

  const at = new Date(Date.now() + AHEAD_SECONDS * 1000).toISOString()
  const run = await prefect.createFlowRun(deploymentId, { state: { type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: at } } })
  const reply = await deliverUntilPrefectAnswers(
    () => fetch(`${server.url}/v1/webhooks/prefect`, { method: 'POST', headers: webhookHeaders(), body: webhookPayload(run.id) }),
    async res => ({ status: res.status, code: (await res.clone().json() as { code?: string }).code }))
  const body = await reply.json() as { state?: string }
  t.equal(reply.status, 202)
  t.equal(body.state, 'deferred', 'a run not yet due waits for its timer')
  const armed = emulator.tasks().filter(task => task.name.startsWith(`${QUEUE}/tasks/`))
  t.equal(armed.length, 1, 'its timer is one task in the queue')

  let state = ''
  for (const giveUp = Date.now() + (AHEAD_SECONDS + 60) * 1000; state !== 'launched' && Date.now() < giveUp; await sleep(250)) {
    const list = await fetch(`${server.url}/v1/dispatches?flow_run_id=${run.id}`, { headers: adminHeaders() })
    state = (await list.json() as { items: Array<{ state: string }> }).items[0]?.state ?? ''
  }
  t.equal(state, 'launched', 'the task fired and launched the run')
  t.equal(executionsOf(emulator, run.id).length, 1, 'one execution')
  const delivery = emulator.taskDeliveries().find(d => d.task === armed[0]?.name && d.status === 200)
  t.equal(delivery?.url, `http://127.0.0.1:${port}/v1/timers/fire`, 'delivered to the timer route, which answered 200')
})
