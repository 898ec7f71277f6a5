// Sends flow-run log lines and events to Prefect in the background, so that writing them never slows
// or fails a dispatch: enqueueing returns at once; each kind has a bounded queue (the oldest item is
// dropped beyond it, and counted); a batch goes out every flushIntervalMs or as soon as batchSize
// items wait, one request per batch and one request in flight per kind; a failed batch is counted and
// dropped, never thrown. flush() drains within a time limit, for shutdown.
//
// Routes (prefect/server/api/logs.py, events.py): `POST /api/logs/` takes a list of LogCreate (201);
// `POST /api/events` takes a list of Events (204) and hands them to the server's event pipeline,
// whose persister makes them readable through `POST /api/events/filter`. Prefect's Python client
// streams events over the `/api/events/in` websocket instead; the REST route is the one a client
// without a websocket has, and it takes a whole batch in one request.
import type { PrefectClient } from './client.ts'
import type { LogCreate } from './flow-run-logs.ts'
import type { PrefectEvent } from './worker-events.ts'

export type ActivityKind = 'logs' | 'events'
export type ActivityOutcome = 'sent' | 'dropped' | 'failed'
export type ActivityCounts = Record<ActivityKind, Record<ActivityOutcome, number> & { queued: number }>

export interface ActivityWriterOptions {
  client: Pick<PrefectClient, 'request'>
  /** Items each kind may hold waiting; beyond it the oldest is dropped. Default 5000. */
  maxQueued?: number
  /** Items one request carries at most, and the count that sends a batch before the interval. Default 200. */
  batchSize?: number
  /** How long an item waits for companions before its batch goes. Default 500 ms. */
  flushIntervalMs?: number
  /** Every count as it changes, for /metrics (e.g. a counter `pushpool_prefect_activity_total{kind,outcome}`). */
  onCount?: (kind: ActivityKind, outcome: ActivityOutcome, items: number) => void
  /** A batch Prefect did not take; the error's message names the route and status, never a secret. */
  onFailure?: (kind: ActivityKind, items: number, error: unknown) => void
}

/** Prefect's Python client cuts a log message at PREFECT_LOGGING_TO_API_MAX_LOG_SIZE; pushpool keeps its lines far shorter. */
const MAX_MESSAGE_CHARS = 20_000
const TRUNCATED = '... [truncated]'

export class PrefectActivityWriter {
  private readonly logs: BatchQueue<LogCreate>
  private readonly events: BatchQueue<PrefectEvent>

  constructor (options: ActivityWriterOptions) {
    const settings = {
      maxQueued: options.maxQueued ?? 5000,
      batchSize: options.batchSize ?? 200,
      flushIntervalMs: options.flushIntervalMs ?? 500,
      onCount: options.onCount,
      onFailure: options.onFailure
    }
    const { client } = options
    this.logs = new BatchQueue('logs', settings, async batch => { await client.request('POST', '/logs/', '/logs/', batch) })
    this.events = new BatchQueue('events', settings, async batch => { await client.request('POST', '/events', '/events', batch) })
  }

  /** Queues log lines; returns at once. */
  log (lines: readonly LogCreate[]): void {
    this.logs.add(lines.map(line => line.message.length > MAX_MESSAGE_CHARS
      ? { ...line, message: line.message.slice(0, MAX_MESSAGE_CHARS - TRUNCATED.length) + TRUNCATED }
      : line))
  }

  /** Queues events; returns at once. */
  emit (events: readonly PrefectEvent[]): void {
    this.events.add(events)
  }

  counts (): ActivityCounts {
    return { logs: this.logs.counts(), events: this.events.counts() }
  }

  /**
   * Sends what waits, within `timeoutMs`; resolves true when everything was handed to Prefect (or
   * failed), false when time ran out with items still queued or a request still out.
   */
  async flush (timeoutMs = 5000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<false>(resolve => { timer = setTimeout(() => resolve(false), timeoutMs) })
    try {
      const drained = Promise.all([this.logs.drain(), this.events.drain()]).then(() => true as const)
      return await Promise.race([drained, timedOut])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Flushes within `timeoutMs`, then takes nothing more: later items and those left queued are dropped. */
  async close (timeoutMs = 5000): Promise<void> {
    this.logs.closing()
    this.events.closing()
    await this.flush(timeoutMs)
    this.logs.close()
    this.events.close()
  }
}

interface QueueSettings {
  maxQueued: number
  batchSize: number
  flushIntervalMs: number
  onCount: ActivityWriterOptions['onCount']
  onFailure: ActivityWriterOptions['onFailure']
}

class BatchQueue<T> {
  private readonly kind: ActivityKind
  private readonly settings: QueueSettings
  private readonly send: (batch: T[]) => Promise<void>
  private queue: T[] = []
  private readonly tally = { sent: 0, dropped: 0, failed: 0 }
  private inFlight: Promise<void> | null = null
  private timer: NodeJS.Timeout | null = null
  private immediate: NodeJS.Immediate | null = null
  /** flush() calls under way: they send batch after batch themselves. */
  private drainers = 0
  /** close() has begun: no timer is armed from now on, so none outlives it. */
  private stopping = false
  private closed = false

  constructor (kind: ActivityKind, settings: QueueSettings, send: (batch: T[]) => Promise<void>) {
    this.kind = kind
    this.settings = settings
    this.send = send
  }

  add (items: readonly T[]): void {
    if (items.length === 0) return
    if (this.closed) {
      this.count('dropped', items.length)
      return
    }
    this.queue.push(...items)
    const excess = this.queue.length - this.settings.maxQueued
    if (excess > 0) {
      this.queue.splice(0, excess)
      this.count('dropped', excess)
    }
    this.schedule()
  }

  counts (): Record<ActivityOutcome, number> & { queued: number } {
    return { ...this.tally, queued: this.queue.length }
  }

  /** Sends batch after batch until nothing waits and nothing is out. */
  async drain (): Promise<void> {
    this.drainers++
    try {
      while (this.inFlight !== null || this.queue.length > 0) {
        if (this.inFlight === null) this.sendBatch()
        await this.inFlight
      }
    } finally {
      this.drainers--
    }
  }

  closing (): void {
    this.stopping = true
    this.clearTimers()
  }

  close (): void {
    this.closed = true
    this.clearTimers()
    if (this.queue.length > 0) this.count('dropped', this.queue.length)
    this.queue = []
  }

  /**
   * A full batch goes on the next turn of the event loop (not in the caller's stack, which would pay
   * for the JSON of the batch); a partial one when the interval ends. Timers never keep the process up.
   */
  private schedule (): void {
    if (this.inFlight !== null || this.drainers > 0 || this.stopping) return
    if (this.queue.length >= this.settings.batchSize) {
      if (this.immediate === null) {
        this.immediate = setImmediate(() => { this.immediate = null; this.sendBatch() })
        this.immediate.unref()
      }
    } else if (this.timer === null && this.queue.length > 0) {
      this.timer = setTimeout(() => { this.timer = null; this.sendBatch() }, this.settings.flushIntervalMs)
      this.timer.unref()
    }
  }

  private sendBatch (): void {
    if (this.inFlight !== null || this.queue.length === 0) return
    this.clearTimers()
    const batch = this.queue.splice(0, this.settings.batchSize)
    this.inFlight = this.sendAndCount(batch).finally(() => {
      this.inFlight = null
      this.schedule()
    })
  }

  /** Never rejects: a failure, even one of the caller's callbacks, ends here. */
  private async sendAndCount (batch: T[]): Promise<void> {
    try {
      await this.send(batch)
    } catch (err) {
      this.count('failed', batch.length)
      try {
        this.settings.onFailure?.(this.kind, batch.length, err)
      } catch {}
      return
    }
    this.count('sent', batch.length)
  }

  private clearTimers (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.immediate !== null) clearImmediate(this.immediate)
    this.timer = null
    this.immediate = null
  }

  private count (outcome: ActivityOutcome, items: number): void {
    this.tally[outcome] += items
    try {
      this.settings.onCount?.(this.kind, outcome, items)
    } catch {}
  }
}
