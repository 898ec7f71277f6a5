// One Prefect object that setup manages, planned before it is touched: what it would become, and
// the write that gets it there. Planning only reads, so `--dry-run` is "plan, do not apply".

export type ObjectKind = 'work pool' | 'webhook block' | 'automation'

export type Outcome = 'create' | 'update' | 'unchanged' | 'delete'

export interface Step<R = void> {
  kind: ObjectKind
  name: string
  outcome: Outcome
  /** For an update, the paths that differ (never their values). */
  changed: string[]
  /** Why the outcome is what it is, when that is not obvious (an adopted pool, a duplicate). */
  note?: string
  /** The object as it would be written, safe to print: secrets are redacted. */
  shown: unknown
  /** Performs the write the outcome calls for; does nothing for "unchanged". */
  apply: () => Promise<R>
}

/** Thrown when setup cannot go on, with a message that says what to fix. */
export class SetupFailure extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SetupFailure'
  }
}
