// The dispatch ledger: one record per idempotency key, each with an append-only event log. Both
// backends (SQLite, PostgreSQL) implement this interface and pass the same test suite.

import type { DispatchState, TransitionName } from './transitions.ts'
import { RetryLater } from '../failures.ts'

/** The ledger's database cannot be reached right now; what was asked of it may be asked again. */
export class StoreUnavailable extends RetryLater {}

export interface Dispatch {
  id: string
  /** `<flow_run_id>:<state_id>` of the Scheduled-type state that made the run dispatchable. */
  key: string
  flowRunId: string
  flowRunName: string | null
  pool: string
  deploymentId: string | null
  /** Names, for operators: known once the launch has read them. */
  deploymentName: string | null
  flowName: string | null
  /** When the dispatched Scheduled-type state was due: launch latency counts from here. */
  scheduledAt: string | null
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
  /** Who drives the dispatch now, and until when; null when nobody does. */
  lease: { owner: string, token: number, expiresAt: string } | null
  /** When cancellation of the run was first requested of this dispatch (admin, webhook or reconcile). */
  cancelRequestedAt: string | null
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
  /** When the Scheduled-type state dispatched is due, if it says. */
  scheduledAt?: string | null
  state: DispatchState
  dueAt: string | null
  receivedAt: string
  detail: string
  /**
   * The new record is taken for `owner` for `ttlMs` in the same write, as `acquire` would take it
   * (its first lease, token 1): a dispatch driven at once needs no second write to own it.
   */
  leasedTo?: { owner: string, ttlMs: number }
}

/** Fields a transition may set alongside the state. */
export type DispatchPatch = Partial<Pick<Dispatch,
'attempts' | 'dueAt' | 'project' | 'region' | 'jobName' | 'executionName' | 'logUri' | 'jobSpec' | 'error' | 'launchedAt' | 'keepJob' |
'executionMayExist' | 'gcpIdentity' | 'deploymentName' | 'flowName'>>

export interface TransitionOptions {
  /** The target, for a transition with several (close). */
  to?: DispatchState
  /** Narrows the states left to those the caller saw the dispatch in. */
  from?: readonly DispatchState[]
  /** Made only while this lease is still the dispatch's and has not expired (fencing). */
  lease?: Lease
  /** With `lease`: what the same write does to it (saves the separate write of a renew or release). */
  leaseAfter?: LeaseAfter
}

/** A lease held on for `holdMs` from the write's time (as `renew` would), or given up (as `release`). */
export type LeaseAfter = { holdMs: number } | 'release'

/** Options of a write without a state change. */
export type NoteOptions = Pick<TransitionOptions, 'lease' | 'leaseAfter'>

/**
 * The right to drive one dispatch until `expiresAt`. `token` fences: each acquisition of the
 * dispatch takes a token one higher, and a write under a lease checks its token, so a holder that
 * lost its lease (it expired and another took it) can change nothing.
 */
export interface Lease {
  dispatchId: string
  owner: string
  token: number
  expiresAt: string
}

export interface Held {
  dispatch: Dispatch
  lease: Lease
}

/**
 * How to find a launch's GCP identity again without rendering its template. `credentials-block`
 * names the GCP Credentials block document the key came from; `credentials-inline` is a key written
 * into the job variables themselves, which only a render finds again; the others need nothing but
 * the dispatch's project. `impersonate` is the service account the launch impersonated from that
 * source (the `impersonate_service_account` job variable); absent when it impersonated none.
 */
export type GcpIdentityRef = (
  | { source: 'credentials-block', blockDocumentId: string }
  | { source: 'credentials-inline' | 'credentials-secret' | 'adc' }
) & { impersonate?: string }

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
  /** Launch latency, in ms, for the most recent launches (at most 100): launched less scheduled (else received). */
  recentLatenciesMs: number[]
}

/** Where a page of `listActionable` ended: the last dispatch's `updatedAt` and `id`. */
export interface ActionableCursor {
  updatedAt: string
  id: string
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres'
  /**
   * Insert under `key`, or return the record that already holds it: the exactly-once primitive.
   * `leasedTo` takes only a record this call inserts.
   */
  createDispatch (input: NewDispatch): Promise<{ dispatch: Dispatch, created: boolean }>
  getDispatch (id: string): Promise<Dispatch | null>
  latestDispatchForFlowRun (flowRunId: string): Promise<Dispatch | null>
  /**
   * The launched dispatch whose execution is `locations/<l>/jobs/<j>/executions/<e>` (the name's
   * tail: Cloud Run may spell the project by number or by id), if any.
   */
  launchedDispatchForExecution (tail: string): Promise<Dispatch | null>
  /**
   * Makes the named transition (transitions.ts) only if the dispatch is in one of the states it
   * leaves (compare-and-set), applying `patch` and appending the event in the same transaction.
   * Returns null when another party moved the dispatch first.
   */
  transition (id: string, name: TransitionName, patch: DispatchPatch, event: EventInput, options?: TransitionOptions): Promise<Dispatch | null>
  /** Update fields without a state change and append a note to the event log; under `lease`, only while it holds. */
  note (id: string, type: string, patch: DispatchPatch, event: EventInput, options?: NoteOptions): Promise<Dispatch | null>
  /**
   * Takes the dispatch for `owner` for `ttlMs`: one compare-and-set, which succeeds only if the
   * dispatch is in one of `states` and no lease holds it (none was taken, it was released, or it
   * expired). A takeover of an expired lease is logged on the dispatch.
   */
  acquire (id: string, states: readonly DispatchState[], owner: string, ttlMs: number): Promise<Held | null>
  /** Extends a lease that still holds, to `ttlMs` from now; null when it was lost. */
  renew (lease: Lease, ttlMs: number): Promise<Lease | null>
  /** Gives a lease up at once, so another instance need not wait for it to expire. */
  release (lease: Lease): Promise<void>
  /**
   * Marks the run's cancellation as requested, once: only the first of concurrent callers gets the
   * dispatch back; the others get null and must act as a duplicate would. A final dispatch is never marked.
   */
  requestCancel (id: string): Promise<Dispatch | null>
  /**
   * Runs `fn` while no other caller, in this process or (PostgreSQL) any instance on the same
   * database, runs under the same `key`: how a concurrency limit's count and claim stay one step.
   */
  exclusively<T> (key: string, fn: () => Promise<T>): Promise<T>
  listEvents (id: string): Promise<DispatchEvent[]>
  /**
   * Dispatches in any of `states` whose due time has come (or that have none) and that no live lease
   * holds, least recently touched first (then by id): reconcile's work list. `after` pages on from
   * the last one listed.
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
