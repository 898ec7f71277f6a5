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
import { PrefectSnapshots } from '../dispatch/prefect-snapshots.ts'
import { instrumentStore } from '../metrics/instrument-store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    dispatcher: Dispatcher
    canceller: Canceller
    reconciler: Reconciler
    prefect: PrefectClient
  }
}

const DRAIN_MS = 7000

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
    readSecret: name => google.readSecret(name)
  })
  // The owner this process names on the leases it takes: one per process, so a restarted instance
  // never mistakes its predecessor's leases for its own.
  const instanceId = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`
  const deps = {
    config, store, prefect, snapshots: new PrefectSnapshots(prefect), google, identities, launcher: new Launcher(), log: fastify.log, instanceId
  }
  const clients = new DispatchClients(deps)
  const canceller = new Canceller({ store, prefect, clients, graceSeconds: config.cancelGraceSeconds, log: fastify.log })
  const dispatcher = new Dispatcher(deps, canceller)
  fastify.decorate('dispatcher', dispatcher)
  fastify.decorate('canceller', canceller)
  fastify.decorate('reconciler', new Reconciler({
    config, store, prefect, dispatcher, canceller, clients, log: fastify.log, instanceId,
    onReaped: dispatch => { metrics.reapedExecutions.inc({ pool: dispatch.pool }) }
  }))
  fastify.decorate('prefect', prefect)
  fastify.addHook('preClose', async () => {
    const left = await dispatcher.drain(DRAIN_MS)
    if (left > 0) fastify.log.warn({ in_flight: left }, 'shutting down with dispatches in flight; reconcile will finish them')
  })
  fastify.addHook('onClose', async () => {
    prefect.close()
    await google.close()
  })
}, { name: 'dispatcher', dependencies: ['config', 'store', 'metrics'] })
