// The emulator's Cloud Logging: the entries its executions write, and entries.list over them
// (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list): resourceNames, filter,
// orderBy "timestamp asc" (default) or "timestamp desc" with ties in insertId order, pageSize
// (default 50, over 1000 or negative refused), opaque pageToken.
import { randomBytes } from 'node:crypto'
import { parseLogFilter } from './log-filter.ts'
import { invalidArgument } from './rpc-error.ts'

/** A LogEntry in its REST JSON form. */
export interface LogEntry {
  logName: string
  resource: { type: string, labels: Record<string, string> }
  timestamp: string
  receiveTimestamp: string
  insertId: string
  severity?: string
  labels?: Record<string, string>
  textPayload?: string
  jsonPayload?: Record<string, unknown>
  protoPayload?: Record<string, unknown>
}

export type NewLogEntry = Omit<LogEntry, 'timestamp' | 'receiveTimestamp' | 'insertId'>

export interface ListLogEntriesRequest {
  resourceNames?: unknown
  filter?: unknown
  orderBy?: unknown
  pageSize?: unknown
  pageToken?: unknown
}

const DEFAULT_PAGE_SIZE = 50
const MAX_PAGE_SIZE = 1000
/** The oldest entries go first beyond this many; the emulator is no archive. */
const MAX_ENTRIES = 200_000
const PROJECT_RESOURCE = /^projects\/([^/]+)(?:\/locations\/[^/]+\/buckets\/[^/]+\/views\/[^/]+)?$/

export class LogStore {
  #entries: LogEntry[] = []
  #lastMicros = 0n

  /** Stamps the entry as Logging would (timestamp, receiveTimestamp, insertId) and keeps it. */
  append (entry: NewLogEntry): LogEntry {
    const micros = this.#nextMicros()
    const stamped: LogEntry = {
      ...entry,
      timestamp: isoMicros(micros),
      receiveTimestamp: isoMicros(micros, true),
      insertId: insertId(micros)
    }
    this.#entries.push(stamped)
    if (this.#entries.length > MAX_ENTRIES) this.#entries.splice(0, this.#entries.length - MAX_ENTRIES)
    return structuredClone(stamped)
  }

  all (): LogEntry[] {
    return structuredClone(this.#entries)
  }

  list (request: ListLogEntriesRequest): { entries: LogEntry[], nextPageToken?: string } {
    const projects = resourceProjects(request.resourceNames)
    const filter = parseLogFilter(optionalString(request.filter, 'filter'))
    const descending = orderOf(request.orderBy)
    const pageSize = pageSizeOf(request.pageSize)
    const start = pageStart(request.pageToken)
    const matching = this.#entries
      .filter(entry => projects.has(entry.logName.split('/')[1]) && filter(entry as unknown as Record<string, unknown>))
    if (descending) matching.reverse()
    const page = matching.slice(start, start + pageSize)
    const end = start + page.length
    return {
      entries: structuredClone(page),
      ...(end < matching.length ? { nextPageToken: Buffer.from(`entries:${end}`).toString('base64url') } : {})
    }
  }

  /**
   * Strictly increasing microseconds, so entries keep their order (ties would sort by insertId), on
   * the wall clock that stamps createTime and every other emulator time. performance.timeOrigin +
   * performance.now() is a monotonic clock anchored once, at process start: once the wall clock is
   * stepped forward, a line written just after an execution's start was stamped before its createTime
   * and fell out of a reader's `timestamp>=createTime`.
   */
  #nextMicros (): bigint {
    const now = BigInt(Date.now()) * 1000n
    this.#lastMicros = now > this.#lastMicros ? now : this.#lastMicros + 1n
    return this.#lastMicros
  }
}

/** `2025-01-15T15:48:06.716662Z`; receive times carry nanoseconds, as Logging writes them. */
function isoMicros (micros: bigint, nanos = false): string {
  const ms = Number(micros / 1000n)
  const fraction = String(micros % 1_000_000n).padStart(6, '0')
  return `${new Date(ms).toISOString().slice(0, 19)}.${fraction}${nanos ? '000' : ''}Z`
}

/** Cloud Run's insertIds: hex seconds, hex microseconds, then 8 random hex digits (`6787d8b6000aef76df59bb52`). */
function insertId (micros: bigint): string {
  const seconds = (micros / 1_000_000n).toString(16).padStart(8, '0')
  const fraction = (micros % 1_000_000n).toString(16).padStart(8, '0')
  return `${seconds}${fraction}${randomBytes(4).toString('hex')}`
}

function resourceProjects (value: unknown): Set<string> {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalidArgument('resourceNames is required: name at least one parent resource, e.g. "projects/my-project".')
  }
  return new Set(value.map(name => {
    const m = typeof name === 'string' ? PROJECT_RESOURCE.exec(name) : null
    if (!m) throw invalidArgument(`Invalid resource name '${String(name)}': expected projects/[PROJECT_ID] (or one of its log views).`)
    return m[1]
  }))
}

function optionalString (value: unknown, field: string): string {
  if (value === undefined || value === null) return ''
  if (typeof value !== 'string') throw invalidArgument(`${field} must be a string.`)
  return value
}

function orderOf (value: unknown): boolean {
  const order = optionalString(value, 'orderBy').trim().replace(/\s+/g, ' ').toLowerCase()
  if (order === '' || order === 'timestamp asc') return false
  if (order === 'timestamp desc') return true
  throw invalidArgument(`Invalid orderBy '${String(value)}': only "timestamp asc" and "timestamp desc" are permitted.`)
}

/** proto3 reads an absent or 0 pageSize as "unset", hence the default. */
function pageSizeOf (value: unknown): number {
  if (value === undefined || value === null) return DEFAULT_PAGE_SIZE
  const size = typeof value === 'string' ? Number(value) : value
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size > MAX_PAGE_SIZE) {
    throw invalidArgument(`Invalid pageSize ${JSON.stringify(value)}: it must be between 0 and ${MAX_PAGE_SIZE}.`)
  }
  return size === 0 ? DEFAULT_PAGE_SIZE : size
}

function pageStart (value: unknown): number {
  const token = optionalString(value, 'pageToken')
  if (token === '') return 0
  const m = /^entries:(\d+)$/.exec(Buffer.from(token, 'base64url').toString())
  if (!m) throw invalidArgument('Invalid pageToken: pass back the nextPageToken of a previous answer, unchanged.')
  return Number(m[1])
}
