// The embedded default's timers: one setTimeout per timer in this process. Nothing here is
// durable; the ledger is: at start-up, and on every reconcile pass, the dispatches that wait for a
// time are armed again from the store, so a restart loses nothing.
import { timerName, type Timer, type Timers } from './timers.ts'

/** setTimeout's longest delay (about 24.8 days); a later timer is armed again by a later pass. */
const LONGEST_DELAY_MS = 2 ** 31 - 1

export class ProcessTimers implements Timers {
  readonly backend = 'process' as const
  private readonly armed = new Map<string, NodeJS.Timeout>()
  private readonly fire: (dispatchId: string) => Promise<void>

  /** `fire` is called when a timer is due; what it throws is its own to report. */
  constructor (fire: (dispatchId: string) => Promise<void>) {
    this.fire = fire
  }

  async arm (timer: Timer): Promise<void> {
    const name = timerName(timer)
    const delay = timer.fireAt.getTime() - Date.now()
    if (this.armed.has(name) || delay > LONGEST_DELAY_MS) return
    const handle = setTimeout(() => {
      this.armed.delete(name)
      void this.fire(timer.dispatchId)
    }, Math.max(0, delay))
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
    for (const handle of this.armed.values()) clearTimeout(handle)
    this.armed.clear()
  }
}
