// The Cloud Run clients that reach a dispatch's execution after launch, under the GCP identity its
// launch used. The ledger records where that identity came from, never the key: a Credentials block
// is read again by id (one Prefect read); a secret or Application Default Credentials need only the
// dispatch's project; an account the launch impersonated is impersonated again from that source.
// Only a key written into the job variables themselves, or a record from before identities were
// recorded, needs the template rendered again. Lookups are shared for a few minutes.
import type { Dispatch } from '../store/store.ts'
import type { CloudRunClients } from '../gcp/clients.ts'
import { CredentialsError } from '../failures.ts'
import { prepareLaunch, type PrepareDeps } from './prepare.ts'
import { TtlCache } from '../util/ttl-cache.ts'

const CACHE_MS = 5 * 60_000

export class DispatchClients {
  private readonly deps: PrepareDeps
  private readonly cache = new TtlCache<CloudRunClients>(CACHE_MS)

  constructor (deps: PrepareDeps) {
    this.deps = deps
  }

  forDispatch (dispatch: Dispatch): Promise<CloudRunClients> {
    const { identities, google, prefect } = this.deps
    const ref = dispatch.gcpIdentity
    if (ref === null || ref.source === 'credentials-inline' || dispatch.project === null) {
      return this.cache.get(`render\0${dispatch.pool}\0${dispatch.deploymentId ?? ''}`,
        async () => (await prepareLaunch(this.deps, dispatch)).clients)
    }
    const project = dispatch.project
    const impersonate = ref.impersonate ?? null
    if (ref.source === 'credentials-block') {
      return this.cache.get(`block\0${ref.blockDocumentId}\0${project}\0${impersonate ?? ''}`, async () => {
        const block = await prefect.readBlockDocument(ref.blockDocumentId)
        if (block === null) {
          throw new CredentialsError(`The GCP Credentials block ${ref.blockDocumentId} this run was launched with no longer exists in Prefect`)
        }
        return await google.cloudRunFor(await identities.resolve({ ...block.data, project }, impersonate))
      })
    }
    // A block-less identity resolves from the project alone, exactly as it did at launch.
    return this.cache.get(`${ref.source}\0${project}\0${impersonate ?? ''}`,
      async () => await google.cloudRunFor(await identities.resolve({ project }, impersonate)))
  }
}
