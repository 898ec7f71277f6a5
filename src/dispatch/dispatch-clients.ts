// The Cloud Run clients that can reach a dispatch's execution after launch. The GCP identity comes
// from the rendered template (its credentials block), so it is rendered again rather than stored —
// key material never reaches the ledger. Dispatches of the same pool and deployment share one
// lookup for a few minutes.
import type { Dispatch } from '../store/store.ts'
import type { CloudRunClients } from '../gcp/clients.ts'
import type { DispatcherDeps } from './dispatcher.ts'
import { prepareLaunch } from './prepare.ts'
import { TtlCache } from '../util/ttl-cache.ts'

const CACHE_MS = 5 * 60_000

export class DispatchClients {
  private readonly deps: Pick<DispatcherDeps, 'config' | 'prefect' | 'snapshots' | 'identities' | 'google'>
  private readonly cache = new TtlCache<CloudRunClients>(CACHE_MS)

  constructor (deps: Pick<DispatcherDeps, 'config' | 'prefect' | 'snapshots' | 'identities' | 'google'>) {
    this.deps = deps
  }

  forDispatch (dispatch: Dispatch): Promise<CloudRunClients> {
    return this.cache.get(`${dispatch.pool}\0${dispatch.deploymentId ?? ''}`,
      async () => (await prepareLaunch(this.deps, dispatch)).clients)
  }
}
