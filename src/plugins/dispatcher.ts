// Wires the dispatcher to its three adapters: Prefect, Cloud Run (with GCP identities) and the
// store. On shutdown, in-flight dispatches get most of Cloud Run's 10 s grace period to finish;
// whatever is left stays in the ledger for reconcile.
import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { PrefectClient } from '../prefect/client.ts'
import { GoogleClients } from '../gcp/clients.ts'
import { IdentityResolver } from '../gcp/credentials.ts'
import { Launcher } from '../cloudrun/launcher.ts'
import { Dispatcher } from '../dispatch/dispatcher.ts'
import { DispatchClients } from '../dispatch/dispatch-clients.ts'
import { Canceller } from '../dispatch/cancel.ts'
import { Reconciler } from '../dispatch/reconcile.ts'
import { DispatchActivity } from '../dispatch/activity.ts'
import { PrefectActivityWriter } from '../prefect/activity-writer.ts'
import { PrefectSnapshots } from '../dispatch/prefect-snapshots.ts'
import { instrumentStore } from '../metrics/instrument-store.ts'
import { ProcessTimers } from '../timers/process-timers.ts'
import { CloudTasksTimers } from '../timers/cloud-tasks.ts'
import { TIMER_ROUTE, type Timers } from '../timers/timers.ts'
import type { Config } from '../config.ts'

declare module 'fastify' {
  interface FastifyInstance {
    dispatcher: Dispatcher
    canceller: Canceller
    reconciler: Reconciler
    prefect: PrefectClient
  }
}

const DRAIN_MS = 7000
/** Of the grace period left after the drain, what the last activity may take to reach Prefect. */
const ACTIVITY_FLUSH_MS = 1000

function makeTimers (config: Config, fire: (dispatchId: string) => Promise<void>): Timers {
  if (config.timers === 'process') return new ProcessTimers(fire)
  // loadConfig holds these to be set together with PUSHPOOL_TIMERS=cloud-tasks.
  const audience = config.audience as string
  return new CloudTasksTimers({
    queue: config.tasksQueue as string,
    url: `${audience.replace(/\/+$/, '')}${TIMER_ROUTE}`,
    audience,
    invoker: config.tasksInvoker as string,
    endpoint: config.tasksEndpoint
  })
}

export default fp(async fastify => {
  const { config } = fastify
  const { metrics } = fastify
  const prefect = new PrefectClient({
    apiUrl: config.prefectApiUrl,
    authString: config.prefectAuthString,
    apiKey: config.prefectApiKey,
    onCall: (route, status, ms) => {
      metrics.prefectCalls.inc({ route, status: String(status) })
      metrics.prefectLatency.observe(ms / 1000, { route })
    }
  })
  const google = new GoogleClients({
    cloudRunEndpoint: config.cloudRunEndpoint,
    secretManagerEndpoint: config.secretManagerEndpoint,
    onCall: (method, code) => { metrics.cloudRunCalls.inc({ method, code: String(code) }) }
  })
  const store = instrumentStore(fastify.store, metrics)
  const identities = new IdentityResolver({
    credentialsSecret: config.gcpCredentialsSecret,
    fallbackProject: config.gcpProject,
    emulated: config.cloudRunEndpoint !== null,
    iamCredentialsEndpoint: config.iamCredentialsEndpoint,
    readSecret: name => google.readSecret(name)
  })
  // The owner this process names on the leases it takes: one per process, so a restarted instance
  // never mistakes its predecessor's leases for its own.
  const instanceId = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`
  // Timers fire through the dispatcher, which arms them: the in-process backend is told whom to call once both exist.
  let fire: (dispatchId: string) => Promise<void> = async () => {}
  const timers = makeTimers(config, dispatchId => fire(dispatchId))
  const snapshots = new PrefectSnapshots(prefect)
  const writer = new PrefectActivityWriter({
    client: prefect,
    onCount: (kind, outcome, items) => { metrics.prefectActivity.inc({ kind, outcome }, items) },
    onFailure: (kind, items, err) => { fastify.log.warn({ kind, items, err: (err as Error).message }, 'Prefect did not take a batch of flow-run activity') }
  })
  const activity = new DispatchActivity({
    writer,
    // Off for a Prefect server on SQLite that deadlocks more often under them (README, "The two commands").
    events: config.prefectEvents,
    snapshots,
    prefectVersion: () => prefect.readServerVersion(),
    workerName: config.workerName,
    // Against an emulated Cloud Run, lines are read only from an emulated Cloud Logging: never Google's.
    crashLogLines: config.cloudRunEndpoint !== null && config.loggingEndpoint === null ? 0 : config.crashLogLines,
    loggingEndpoint: config.loggingEndpoint,
    secrets: [config.prefectAuthString, config.prefectApiKey].filter((s): s is string => s !== null),
    log: fastify.log
  })
  const deps = {
    config, store, prefect, snapshots, google, identities, launcher: new Launcher(), log: fastify.log, instanceId, timers, activity
  }
  const clients = new DispatchClients(deps)
  const canceller = new Canceller({ store, prefect, clients, graceSeconds: config.cancelGraceSeconds, activity, log: fastify.log })
  const dispatcher = new Dispatcher(deps, canceller)
  fire = async dispatchId => {
    try {
      await dispatcher.fire(dispatchId)
    } catch (err) {
      // The dispatch is still in the ledger, waiting: the timer fires again after a backoff, and
      // reconcile drives it should the backend give up.
      fastify.log.warn({ dispatch_id: dispatchId, err: (err as Error).message }, 'a timer\'s drive failed; it fires again after a backoff')
      throw err
    }
  }
  fastify.decorate('dispatcher', dispatcher)
  fastify.decorate('canceller', canceller)
  const reconciler = new Reconciler({
    config, store, prefect, dispatcher, canceller, clients, activity, log: fastify.log, instanceId,
    onReaped: dispatch => { metrics.reapedExecutions.inc({ pool: dispatch.pool }) }
  })
  fastify.decorate('reconciler', reconciler)
  if (timers.backend === 'process') {
    // In-process timers die with the process: the ledger arms them again at start.
    fastify.addHook('onReady', async () => {
      const armed = await reconciler.armWaiting().catch((err: Error) => { fastify.log.warn({ err: err.message }, 'could not arm waiting timers'); return 0 })
      if (armed > 0) fastify.log.info({ armed }, 'timers armed again from the ledger')
    })
  }
  fastify.decorate('prefect', prefect)
  fastify.addHook('preClose', async () => {
    const left = await dispatcher.drain(DRAIN_MS)
    if (left > 0) fastify.log.warn({ in_flight: left }, 'shutting down with dispatches in flight; reconcile will finish them')
  })
  fastify.addHook('onClose', async () => {
    // What the drives wrote for Prefect goes before the client closes; what does not fit the time is dropped.
    await writer.close(ACTIVITY_FLUSH_MS)
    prefect.close()
    await Promise.all([google.close(), timers.close()])
  })
}, { name: 'dispatcher', dependencies: ['config', 'store', 'metrics'] })
