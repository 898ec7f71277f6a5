// The timer contract: fire a dispatch at a time, with no loop of pushpool's own. Arming is
// idempotent per dispatch key and time, so several instances and repeated reconcile passes that
// arm the same run make one timer; disarming is best-effort (a stale timer is harmless: firing
// re-reads the run and does nothing when it moved on). Two backends: an in-process timer for the
// embedded default (process-timers.ts) and Cloud Tasks on GCP (cloud-tasks.ts).
import { createHash } from 'node:crypto'

/** Where a remote timer (Cloud Tasks) delivers its firing. */
export const TIMER_ROUTE = '/v1/timers/fire'

export interface Timer {
  dispatchId: string
  /** The dispatch's idempotency key: with `fireAt`, what names the timer. */
  dispatchKey: string
  fireAt: Date
}

export interface Timers {
  readonly backend: 'process' | 'cloud-tasks'
  arm (timer: Timer): Promise<void>
  disarm (timer: Timer): Promise<void>
  close (): Promise<void>
}

/**
 * The timer's name: a hash of the dispatch key and the time, so the same timer armed twice has the
 * same name (Cloud Tasks then answers ALREADY_EXISTS), and a dispatch armed again for a new time
 * gets a new one. Hashed, as Google advises for task names: sequential names slow the queue.
 */
export function timerName (timer: Timer): string {
  return createHash('sha256').update(`${timer.dispatchKey}\0${timer.fireAt.toISOString()}`).digest('hex').slice(0, 40)
}
