// A drive's ownership of one dispatch (docs/architecture.md, "Ownership"): the lease it acquired,
// held before every side effect for as long as that side effect may take. So no other instance can
// take the dispatch while a call this drive made may still be in flight, and a drive that lost its
// lease (it ran past its own deadlines, or its process stalled) stops before its next side effect:
// every write it makes carries the lease's fencing token, which the store checks.
//
// A hold is a write of its own (a renewal), unless the drive's last write already held the lease
// on for the step that follows it (`holdFor`): each write is a commit, and a dispatch that goes well makes five.
import type { Dispatch, DispatchPatch, EventInput, Lease, LeaseAfter, NewDispatch, Store, TransitionOptions } from '../store/store.ts'
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
 * How long after a write that held the lease on for a step that step may begin without renewing
 * it: the write holds it this much longer, so the step still gets its full time and margin.
 */
const STEP_START_MS = 1000

/** Of a write that also holds the lease on (or gives it up). */
export interface LeaseOptions {
  /** Hold the lease on for the step that follows this write: at most this many ms, plus the margin. */
  holdFor?: number
  /** Give the lease up: the dispatch is at rest. */
  release?: boolean
}

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
  /**
   * Until when the lease surely holds, on this process's monotonic clock (performance.now()): when
   * the write that set its expiry was sent, plus the time it was set for. The store counts from
   * when the write arrived, later, so this never overstates it.
   */
  private heldUntil: number
  private released = false
  readonly deadlines: StepDeadlines

  constructor (store: Store, lease: Lease, deadlines: StepDeadlines, heldUntil: number) {
    this.store = store
    this.lease = lease
    this.deadlines = deadlines
    this.heldUntil = heldUntil
  }

  /**
   * Takes `dispatch` for `owner` if it is in one of `states` and no live lease holds it, for long
   * enough to make its first side effect (`firstStepMs`); null when it is not to be had.
   */
  static async acquire (store: Store, id: string, states: readonly DispatchState[], owner: string, deadlines: StepDeadlines,
    firstStepMs: number): Promise<{ dispatch: Dispatch, own: Ownership } | null> {
    const sentAt = performance.now()
    const held = await store.acquire(id, states, owner, firstStepMs + MARGIN_MS)
    return held === null ? null : { dispatch: held.dispatch, own: new Ownership(store, held.lease, deadlines, sentAt + firstStepMs + MARGIN_MS) }
  }

  /**
   * Records a new dispatch already taken for `owner`, as `acquire` would take it, in the one write
   * that records it (`own`). When `input.key` was recorded already, that record is returned, not taken.
   */
  static async create (store: Store, input: NewDispatch, owner: string, deadlines: StepDeadlines,
    firstStepMs: number): Promise<{ dispatch: Dispatch, created: boolean, own?: Ownership }> {
    const sentAt = performance.now()
    const ttlMs = firstStepMs + MARGIN_MS
    const { dispatch, created } = await store.createDispatch({ ...input, leasedTo: { owner, ttlMs } })
    if (!created) return { dispatch, created }
    if (dispatch.lease === null) throw new Error(`the store recorded dispatch ${dispatch.id} without the lease it was asked for`)
    return { dispatch, created, own: new Ownership(store, { dispatchId: dispatch.id, ...dispatch.lease }, deadlines, sentAt + ttlMs) }
  }

  get dispatchId (): string {
    return this.lease.dispatchId
  }

  /**
   * Holds the lease for a step of at most `stepMs`, from now: renews it, unless the last write
   * already held it on for long enough. Throws LeaseLost if it is gone.
   */
  async hold (stepMs: number): Promise<void> {
    const sentAt = performance.now()
    if (this.heldUntil >= sentAt + stepMs + MARGIN_MS) return
    const renewed = await this.store.renew(this.lease, stepMs + MARGIN_MS)
    if (renewed === null) throw new LeaseLost(this.lease.dispatchId)
    this.lease = renewed
    this.heldUntil = sentAt + stepMs + MARGIN_MS
  }

  /** A transition of the owned dispatch, fenced by the lease: null when another drive moved it, or owns it now. */
  async transition (name: TransitionName, patch: DispatchPatch, event: EventInput,
    options: Omit<TransitionOptions, 'lease' | 'leaseAfter'> & LeaseOptions = {}): Promise<Dispatch | null> {
    // holdFor and release are for `written`, not the store.
    const { holdFor, release, ...rest } = options
    return await this.written(leaseAfter => this.store.transition(this.lease.dispatchId, name, patch, event, { ...rest, lease: this.lease, leaseAfter }), options)
  }

  async note (type: string, patch: DispatchPatch, event: EventInput, options: LeaseOptions = {}): Promise<Dispatch | null> {
    return await this.written(leaseAfter => this.store.note(this.lease.dispatchId, type, patch, event, { lease: this.lease, leaseAfter }), options)
  }

  /** Gives the dispatch up at once, so nobody waits for the lease to expire. */
  async release (): Promise<void> {
    if (this.released) return
    await this.store.release(this.lease)
  }

  /** Makes a fenced write, with what it does to the lease, and keeps track of the lease it leaves. */
  private async written (write: (leaseAfter: LeaseAfter | undefined) => Promise<Dispatch | null>, options: LeaseOptions): Promise<Dispatch | null> {
    const sentAt = performance.now()
    const holdMs = options.holdFor === undefined ? undefined : options.holdFor + MARGIN_MS + STEP_START_MS
    const leaseAfter: LeaseAfter | undefined = options.release === true ? 'release' : holdMs === undefined ? undefined : { holdMs }
    const written = await write(leaseAfter)
    if (written === null) return null
    if (leaseAfter === 'release') {
      this.released = true
      this.heldUntil = 0
    } else if (holdMs !== undefined && written.lease !== null) {
      this.lease = { ...this.lease, expiresAt: written.lease.expiresAt }
      this.heldUntil = sentAt + holdMs
    }
    return written
  }
}
