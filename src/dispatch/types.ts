// What the dispatch modules are given and what they answer, kept apart from the modules that use
// them so no module of the dispatch layer imports another only for a type.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Config } from '../config.ts'
import type { PrefectClient } from '../prefect/client.ts'
import type { Store, Dispatch } from '../store/store.ts'
import type { Launcher } from '../cloudrun/launcher.ts'
import type { IdentityResolver } from '../gcp/credentials.ts'
import type { GoogleClients } from '../gcp/clients.ts'
import type { PrefectSnapshots } from './prefect-snapshots.ts'
import type { Timers } from '../timers/timers.ts'
import type { DispatchActivity } from './activity.ts'

export interface DispatchDeps {
  config: Config
  store: Store
  prefect: PrefectClient
  /** Recent copies of the work pool, its queues and flows, shared by every dispatch. */
  snapshots: PrefectSnapshots
  launcher: Launcher
  identities: IdentityResolver
  google: GoogleClients
  log: Logger
  /** This process, as the owner named on the leases it takes (docs/architecture.md, "Ownership"). */
  instanceId: string
  /** What fires a dispatch that waits for a time. */
  timers: Timers
  /** What the dispatch does, written into Prefect as its worker's logs and events. */
  activity: DispatchActivity
}

/** Something told pushpool a flow run may need it: a webhook, or reconcile's own look. */
export interface DispatchEvent {
  flowRunId: string
  /** Prefect's event name, e.g. prefect.flow-run.Scheduled; informational only. */
  event: string | null
  receivedAt: Date
}

export type DispatchOutcome =
  | { status: 'ignored', reason: string, dispatch?: Dispatch }
  | { status: 'duplicate', reason: string, dispatch: Dispatch }
  | { status: 'accepted', dispatch: Dispatch }
