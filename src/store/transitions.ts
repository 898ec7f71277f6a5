// The dispatch state machine as data: every move a dispatch can make, by name, with the states it
// may leave and the states it may enter. Every caller moves a dispatch by naming one of these; the
// store refuses any other move, so the ledger can never hold a path this table does not show.
// docs/architecture.md draws the same machine and states its invariants.

export const DISPATCH_STATES = [
  'received', 'deferred', 'skipped', 'claimed', 'launching', 'launched',
  'succeeded', 'failed', 'crashed', 'cancelled', 'retrying', 'submit_failed'
] as const
export type DispatchState = typeof DISPATCH_STATES[number]

interface Transition {
  readonly from: readonly DispatchState[]
  readonly to: readonly DispatchState[]
}

export const TRANSITIONS = {
  /** Take the run: Pending is about to be proposed to Prefect. */
  claim: { from: ['received', 'deferred'], to: ['claimed'] },
  /** A pool or queue concurrency limit (or a pause) holds the run back for a while. */
  hold: { from: ['received', 'deferred'], to: ['deferred'] },
  /** A newer Scheduled-type state of the run replaced this one, or the run is gone from Prefect. */
  supersede: { from: ['received', 'deferred'], to: ['skipped'] },
  /** Prefect asked to wait, or could not be reached: the claim is made again later. */
  postponeClaim: { from: ['claimed'], to: ['deferred'] },
  /** Prefect gave the run to another party (ABORT or REJECT of Pending). */
  yield: { from: ['claimed'], to: ['skipped'] },
  /** Pending is accepted and the job rendered: Cloud Run is about to be called. */
  launch: { from: ['claimed', 'retrying'], to: ['launching'] },
  /** Cloud Run named the execution. */
  launched: { from: ['launching'], to: ['launched'] },
  /**
   * The launch failed in a way that may pass (an outage, a quota, a launch cut short by a crash):
   * reconcile drives it again. Pending stays accepted, so a retry needs no new claim.
   */
  retry: { from: ['claimed', 'retrying', 'launching'], to: ['retrying'] },
  /** The launch can never succeed (a template, credential or Cloud Run refusal): the run is crashed. */
  submitFailed: { from: ['claimed', 'retrying', 'launching'], to: ['submit_failed'] },
  /**
   * The run was cancelled before anything was launched for it. Not from `launching`: a RunJob may
   * be in flight, so that dispatch is left to record its execution, which reconcile then reaps.
   */
  cancelUnlaunched: { from: ['received', 'deferred', 'claimed', 'retrying'], to: ['cancelled'] },
  /** The run was cancelled and its execution cancelled by pushpool. */
  cancel: { from: ['launched'], to: ['cancelled'] },
  /** The run or its execution ended: the record takes the run's end. */
  close: { from: ['launched'], to: ['succeeded', 'failed', 'crashed', 'cancelled'] }
} as const satisfies Record<string, Transition>

export type TransitionName = keyof typeof TRANSITIONS

/** The states a transition may enter. */
export type TargetOf<N extends TransitionName> = typeof TRANSITIONS[N]['to'][number]

const leaving = (state: DispatchState): TransitionName[] =>
  (Object.keys(TRANSITIONS) as TransitionName[]).filter(name => (TRANSITIONS[name].from as readonly string[]).includes(state))

/** States no transition leaves: a dispatch there never moves again, and retention may prune it. */
export const FINAL_STATES: readonly DispatchState[] = DISPATCH_STATES.filter(state => leaving(state).length === 0)

/** States a drive can still advance (everything not final, but for `launched`, which only reconcile closes). */
export const DRIVABLE_STATES: readonly DispatchState[] = DISPATCH_STATES.filter(state =>
  state !== 'launched' && leaving(state).length > 0)

/** States in which nothing has been launched and the run can be cancelled by the ledger alone. */
export const UNLAUNCHED_STATES: readonly DispatchState[] = TRANSITIONS.cancelUnlaunched.from

/**
 * The state a named transition enters. `to` picks one when the transition allows several (close);
 * a target the transition does not allow is a programming error, thrown at once.
 */
export function targetOf (name: TransitionName, to?: DispatchState): DispatchState {
  const allowed: readonly DispatchState[] = TRANSITIONS[name].to
  const target = to ?? (allowed.length === 1 ? allowed[0] : undefined)
  if (target === undefined || !allowed.includes(target)) {
    throw new Error(`transition ${name} cannot enter ${to ?? '(unspecified)'}; it enters ${allowed.join(' or ')}`)
  }
  return target
}

/**
 * The states a named transition may leave. `from` narrows them to the states the caller saw the
 * dispatch in; a state the transition does not leave is a programming error, thrown at once.
 */
export function sourcesOf (name: TransitionName, from?: readonly DispatchState[]): readonly DispatchState[] {
  const allowed: readonly DispatchState[] = TRANSITIONS[name].from
  if (from === undefined) return allowed
  const foreign = from.filter(state => !allowed.includes(state))
  if (foreign.length > 0) throw new Error(`transition ${name} cannot leave ${foreign.join(', ')}; it leaves ${allowed.join(', ')}`)
  return from
}
