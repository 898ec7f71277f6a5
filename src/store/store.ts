// The dispatch ledger: one record per idempotency key, each with an append-only event log. Both
// backends (SQLite, PostgreSQL) implement this interface and pass the same test suite.

import type { DispatchState, TransitionName } from './transitions.ts'

export interface Dispatch {
  id: string
  /** `<flow_run_id>:<state_id>` of the Scheduled-type state that made the run dispatchable. */
  key: string
  flowRunId: string
  flowRunName: string | null
  pool: string
  deploymentId: string | null
  state: DispatchState
  /** Launch attempts made so far (each RunJob call counts). */
  attempts: number
  /** When a deferred or retrying dispatch should be driven again. */
  dueAt: string | null
  project: string | null
  region: string | null
  jobName: string | null
  executionName: string | null
  logUri: string | null
  /** The pool asked to keep the per-run job after the run (Prefect's keep_job). */
  keepJob: boolean
  /**
   * An earlier launch attempt may have created an execution that is not recorded here (its RunJob
   * failed in a way that may have been applied, or its process died mid-launch), so the next
   * launch must look for one before running. Cleared by the claim (nothing launched yet) and by a
   * launch whose every RunJob certainly created nothing (a quota rejection). True unless cleared,
   * so a record from before this field existed is looked for.
   */
  executionMayExist: boolean
  /** Where the GCP identity the launch used can be found again (never key material); null before launch. */
  gcpIdentity: GcpIdentityRef | null
  /** The rendered Cloud Run job, already redacted: secret values never reach the store. */
  jobSpec: unknown
  error: string | null
  receivedAt: string
  launchedAt: string | null
  createdAt: string
  updatedAt: string
}

export interface DispatchEvent {
  seq: number
  dispatchId: string
  at: string
  /** The state entered, or a non-transition note such as `attempt_failed`. */
  type: string
  from: DispatchState | null
  to: DispatchState | null
  detail: string
  /** What Prefect or GCP answered, redacted. */
  reply: unknown
}

export interface NewDispatch {
  key: string
  flowRunId: string
  flowRunName: string | null
  pool: string
  deploymentId: string | null
  state: DispatchState
  dueAt: string | null
  receivedAt: string
  detail: string
}

/** Fields a transition may set alongside the state. */
export type DispatchPatch = Partial<Pick<Dispatch,
'attempts' | 'dueAt' | 'project' | 'region' | 'jobName' | 'executionName' | 'logUri' | 'jobSpec' | 'error' | 'launchedAt' | 'keepJob' |
'executionMayExist' | 'gcpIdentity'>>

export interface TransitionOptions {
  /** The target, for a transition with several (close). */
  to?: DispatchState
  /** Narrows the states left to those the caller saw the dispatch in. */
  from?: readonly DispatchState[]
}

/**
 * How to find a launch's GCP identity again without rendering its template. `credentials-block`
 * names the GCP Credentials block document the key came from; `credentials-inline` is a key written
 * into the job variables themselves, which only a render finds again; the others need nothing but
 * the dispatch's project.
 */
export type GcpIdentityRef =
  | { source: 'credentials-block', blockDocumentId: string }
  | { source: 'credentials-inline' | 'credentials-secret' | 'adc' }

export interface EventInput {
  detail: string
  reply?: unknown
}

export interface DispatchQuery {
  state?: DispatchState
  pool?: string
  deploymentId?: string
  flowRunId?: string
  since?: string
  until?: string
  limit: number
  cursor?: { createdAt: string, id: string }
}

export interface DispatchPage {
  items: Dispatch[]
  next: { createdAt: string, id: string } | null
}

export interface PoolSummary {
  counts: Partial<Record<DispatchState, number>>
  lastDispatchAt: string | null
  /** received → launched, in ms, for the most recent launches (at most 100). */
  recentLatenciesMs: number[]
}

/** Where a page of `listActionable` ended: the last dispatch's `updatedAt` and `id`. */
export interface ActionableCursor {
  updatedAt: string
  id: string
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres'
  /** Insert under `key`, or return the record that already holds it: the exactly-once primitive. */
  createDispatch (input: NewDispatch): Promise<{ dispatch: Dispatch, created: boolean }>
  getDispatch (id: string): Promise<Dispatch | null>
  latestDispatchForFlowRun (flowRunId: string): Promise<Dispatch | null>
  /**
   * Makes the named transition (transitions.ts) only if the dispatch is in one of the states it
   * leaves (compare-and-set), applying `patch` and appending the event in the same transaction.
   * Returns null when another party moved the dispatch first.
   */
  transition (id: string, name: TransitionName, patch: DispatchPatch, event: EventInput, options?: TransitionOptions): Promise<Dispatch | null>
  /** Update fields without a state change and append a note to the event log. */
  note (id: string, type: string, patch: DispatchPatch, event: EventInput): Promise<Dispatch | null>
  listEvents (id: string): Promise<DispatchEvent[]>
  /**
   * Dispatches in any of `states` whose due time has come (or that have none), least recently
   * touched first (then by id): reconcile's work list. `after` pages on from the last one listed.
   */
  listActionable (states: readonly DispatchState[], now: string, limit: number, after?: ActionableCursor): Promise<Dispatch[]>
  /** Counts by state, the newest dispatch time and recent launch latencies (ms), for one pool. */
  summarizePool (pool: string): Promise<PoolSummary>
  /** Deletes dispatches in a final state last touched before `before`; returns how many. */
  prune (before: string): Promise<number>
  listDispatches (query: DispatchQuery): Promise<DispatchPage>
  /** Cheap liveness check of the backing database, for /readyz. */
  ping (): Promise<void>
  close (): Promise<void>
}
