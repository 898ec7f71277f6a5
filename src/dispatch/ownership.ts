// A drive's ownership of one dispatch (docs/architecture.md, "Ownership"): the lease it acquired,
// renewed before every side effect for exactly as long as that side effect may take. So no other
// instance can take the dispatch while a call this drive made may still be in flight, and a drive
// that lost its lease (it ran past its own deadlines, or its process stalled) stops before its next
// side effect: every write it makes carries the lease's fencing token, which the store checks.
import type { Dispatch, DispatchPatch, EventInput, Lease, Store, TransitionOptions } from '../store/store.ts'
import type { DispatchState, TransitionName } from '../store/transitions.ts'

/** The drive no longer owns its dispatch; whoever took it over carries on. */
export class LeaseLost extends Error {
  constructor (dispatchId: string) {
    super(`the lease on dispatch ${dispatchId} was lost: another drive owns it now`)
    this.name = 'LeaseLost'
  }
}

/** Time for the store write that follows a side effect, and for a slow scheduler between the two. */
const MARGIN_MS = 5000

/**
 * How long each kind of side effect may take at most, from the deadlines of the calls it makes:
 * the lease is held for that long (plus a margin) before the call is made.
 */
export interface StepDeadlines {
  /** One Prefect call, with the client's own retries. */
  prefectCallMs: number
  /** One unary Cloud Run call. */
  cloudRunCallMs: number
  /** CreateJob, with the wait for the job to be ready to run. */
  createJobMs: number
}

export class Ownership {
  private readonly store: Store
  private lease: Lease
  readonly deadlines: StepDeadlines

  constructor (store: Store, lease: Lease, deadlines: StepDeadlines) {
    this.store = store
    this.lease = lease
    this.deadlines = deadlines
  }

  /**
   * Takes `dispatch` for `owner` if it is in one of `states` and no live lease holds it, for long
   * enough to make its first side effect (`firstStepMs`); null when it is not to be had.
   */
  static async acquire (store: Store, id: string, states: readonly DispatchState[], owner: string, deadlines: StepDeadlines,
    firstStepMs: number): Promise<{ dispatch: Dispatch, own: Ownership } | null> {
    const held = await store.acquire(id, states, owner, firstStepMs + MARGIN_MS)
    return held === null ? null : { dispatch: held.dispatch, own: new Ownership(store, held.lease, deadlines) }
  }

  get dispatchId (): string {
    return this.lease.dispatchId
  }

  /** Holds the lease for a step of at most `stepMs`, from now; throws LeaseLost if it is gone. */
  async hold (stepMs: number): Promise<void> {
    const renewed = await this.store.renew(this.lease, stepMs + MARGIN_MS)
    if (renewed === null) throw new LeaseLost(this.lease.dispatchId)
    this.lease = renewed
  }

  /** A transition of the owned dispatch, fenced by the lease: null when another drive moved it, or owns it now. */
  async transition (name: TransitionName, patch: DispatchPatch, event: EventInput, options: Omit<TransitionOptions, 'lease'> = {}): Promise<Dispatch | null> {
    return await this.store.transition(this.lease.dispatchId, name, patch, event, { ...options, lease: this.lease })
  }

  async note (type: string, patch: DispatchPatch, event: EventInput): Promise<Dispatch | null> {
    return await this.store.note(this.lease.dispatchId, type, patch, event, { lease: this.lease })
  }

  /** Gives the dispatch up at once, so nobody waits for the lease to expire. */
  async release (): Promise<void> {
    await this.store.release(this.lease)
  }
}
