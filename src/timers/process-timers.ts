// The embedded default's timers: one setTimeout per timer in this process. Nothing here is
// durable; the ledger is: at start-up, and on every reconcile pass, the dispatches that wait for a
// time are armed again from the store, so a restart loses nothing.
import { timerName, type Timer, type Timers } from './timers.ts'

/** setTimeout's longest delay (about 24.8 days); a later timer is armed again by a later pass. */
const LONGEST_DELAY_MS = 2 ** 31 - 1

/** How a firing that failed is tried again. */
export interface FiringRetry {
  attempts: number
  minBackoffMs: number
  maxBackoffMs: number
}

/**
 * As the Cloud Tasks queue cloudbuild.yaml creates (`--max-attempts=20 --min-backoff=1s
 * --max-backoff=60s`), so that both backends ride out an outage of Prefect alike: a timer whose
 * drive could not read its run fires again in seconds, not at the next reconcile pass.
 */
export const QUEUE_RETRY: FiringRetry = { attempts: 20, minBackoffMs: 1000, maxBackoffMs: 60_000 }

/** The wait before attempt `attempt + 1`: doubling from the least, up to the most, as Cloud Tasks backs off. */
export function backoffMs (retry: FiringRetry, attempt: number): number {
  return Math.min(retry.maxBackoffMs, retry.minBackoffMs * 2 ** (attempt - 1))
}

export class ProcessTimers implements Timers {
  readonly backend = 'process' as const
  private readonly armed = new Map<string, NodeJS.Timeout>()
  private readonly fire: (dispatchId: string) => Promise<void>
  private readonly retry: FiringRetry
  private closed = false

  /**
   * `fire` is called when a timer is due. A firing that rejects is tried again after a backoff, as
   * Cloud Tasks tries again a delivery answered with an error; what it throws is its own to report.
   */
  constructor (fire: (dispatchId: string) => Promise<void>, retry: FiringRetry = QUEUE_RETRY) {
    this.fire = fire
    this.retry = retry
  }

  async arm (timer: Timer): Promise<void> {
    const name = timerName(timer)
    const delay = timer.fireAt.getTime() - Date.now()
    if (this.armed.has(name) || delay > LONGEST_DELAY_MS) return
    this.set(name, timer.dispatchId, Math.max(0, delay), 1)
  }

  private set (name: string, dispatchId: string, delay: number, attempt: number): void {
    const handle = setTimeout(() => {
      this.armed.delete(name)
      this.fire(dispatchId).catch(() => {
        // Armed again meanwhile (a reconcile pass), closed, or out of attempts: reconcile's next
        // pass drives the dispatch, which still waits in the ledger.
        if (this.closed || this.armed.has(name) || attempt >= this.retry.attempts) return
        this.set(name, dispatchId, backoffMs(this.retry, attempt), attempt + 1)
      })
    }, delay)
    // A pending timer must not keep the process alive on shutdown: the ledger remembers it.
    handle.unref()
    this.armed.set(name, handle)
  }

  async disarm (timer: Timer): Promise<void> {
    const name = timerName(timer)
    clearTimeout(this.armed.get(name))
    this.armed.delete(name)
  }

  /** Timers armed now, for tests and /metrics. */
  get size (): number {
    return this.armed.size
  }

  async close (): Promise<void> {
    this.closed = true
    for (const handle of this.armed.values()) clearTimeout(handle)
    this.armed.clear()
  }
}
