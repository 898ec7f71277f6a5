// The embedded store: SQLite through node:sqlite. One process owns the file; WAL keeps readers
// (admin routes) from blocking the dispatcher's writes. synchronous=NORMAL: in WAL mode a commit
// then survives a crash of the process but not of the machine, and costs no fsync (an fsync per
// commit was a quarter of a dispatch's cost). Cloud Run's disk is memory anyway; deployments that
// need a ledger to outlive the machine use PostgreSQL (docs/deploy.md).
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { randomUUID } from 'node:crypto'
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import type {
  Dispatch, DispatchEvent, DispatchPage, DispatchPatch, DispatchQuery, EventInput, Lease, NewDispatch, NoteOptions, Store
} from './store.ts'
import { SQLITE_MIGRATIONS } from './migrations.ts'
import { FINAL_STATES, sourcesOf, targetOf, type DispatchState } from './transitions.ts'
import { rowToDispatch, rowToEvent, patchColumns, listFilters, escapeLike, leaseAssignments, type Row } from './rows.ts'
import { KeyedQueue } from '../util/keyed-queue.ts'

export function openSqliteStore (path: string): Store {
  if (path !== ':memory:') makeOwnDirectory(path)
  const db = new DatabaseSync(path)
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;')
  migrate(db)

  const now = (): string => new Date().toISOString()
  const locks = new KeyedQueue()
  // Statements are compiled once per distinct SQL text: the patch columns and filters vary, but
  // over a handful of shapes.
  const statements = new Map<string, StatementSync>()
  const prepare = (sql: string): StatementSync => {
    let statement = statements.get(sql)
    if (statement === undefined) {
      statement = db.prepare(sql)
      statements.set(sql, statement)
    }
    return statement
  }

  const selectById = prepare('SELECT * FROM dispatches WHERE id = ?')
  const selectLease = prepare('SELECT state, lease_token, lease_expires_at FROM dispatches WHERE id = ?')
  const selectByKey = prepare('SELECT * FROM dispatches WHERE key = ?')
  const insertEvent = prepare(
    'INSERT INTO dispatch_events (dispatch_id, at, type, from_state, to_state, detail, reply) VALUES (?, ?, ?, ?, ?, ?, ?)')

  const get = (id: string): Dispatch | null => {
    const row = selectById.get(id) as Row | undefined
    return row === undefined ? null : rowToDispatch(row)
  }

  const appendEvent = (id: string, at: string, type: string, from: DispatchState | null, to: DispatchState | null, event: EventInput): void => {
    insertEvent.run(id, at, type, from, to, event.detail, event.reply === undefined ? null : JSON.stringify(event.reply))
  }

  // node:sqlite is synchronous, so a BEGIN IMMEDIATE … COMMIT block cannot interleave with another
  // call in this process; IMMEDIATE also serialises against any other process on the same file.
  const inTransaction = <T>(fn: () => T): T => {
    db.exec('BEGIN IMMEDIATE')
    try {
      const result = fn()
      db.exec('COMMIT')
      return result
    } catch (err) {
      db.exec('ROLLBACK')
      throw err
    }
  }

  /** Applies the patch (and state, and what the options ask of the lease) and returns the updated record, in one statement. */
  const update = (id: string, state: DispatchState | null, patch: DispatchPatch, at: string, options?: NoteOptions): Dispatch => {
    const { assignments, values } = patchColumns(patch)
    if (state !== null) { assignments.push('state = ?'); values.push(state) }
    leaseAssignments(options, assignments, values, holdMs => ({ assignment: 'lease_expires_at = ?', value: expiry(at, holdMs) }))
    assignments.push('updated_at = ?'); values.push(at)
    const row = prepare(`UPDATE dispatches SET ${assignments.join(', ')} WHERE id = ? RETURNING *`).get(...values as SQLInputValue[], id) as Row
    return rowToDispatch(row)
  }
  const currentState = (id: string, lease: Lease | undefined, at: string): DispatchState | null => {
    const row = selectLease.get(id) as { state: DispatchState, lease_token: number, lease_expires_at: string | null } | undefined
    if (row === undefined) return null
    // Fencing: a write under a lease needs the lease's own token, not yet expired.
    if (lease !== undefined && (Number(row.lease_token) !== lease.token || row.lease_expires_at === null || row.lease_expires_at <= at)) return null
    return row.state
  }
  const expiry = (at: string, ttlMs: number): string => new Date(Date.parse(at) + ttlMs).toISOString()

  return {
    kind: 'sqlite',

    async createDispatch (input: NewDispatch) {
      return inTransaction(() => {
        const existing = selectByKey.get(input.key) as Row | undefined
        if (existing !== undefined) return { dispatch: rowToDispatch(existing), created: false }
        const id = randomUUID()
        const at = now()
        const lease = input.leasedTo
        const row = prepare(`INSERT INTO dispatches (id, key, flow_run_id, flow_run_name, pool, deployment_id, scheduled_at, state, attempts,
          due_at, received_at, created_at, updated_at, lease_owner, lease_token, lease_expires_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?) RETURNING *`)
          .get(id, input.key, input.flowRunId, input.flowRunName, input.pool, input.deploymentId, input.scheduledAt ?? null, input.state,
            input.dueAt, input.receivedAt, at, at, lease?.owner ?? null, lease === undefined ? 0 : 1, lease === undefined ? null : expiry(at, lease.ttlMs)) as Row
        appendEvent(id, at, input.state, null, input.state, { detail: input.detail })
        return { dispatch: rowToDispatch(row), created: true }
      })
    },

    async getDispatch (id) { return get(id) },

    async latestDispatchForFlowRun (flowRunId) {
      const row = prepare('SELECT * FROM dispatches WHERE flow_run_id = ? ORDER BY created_at DESC, id DESC LIMIT 1')
        .get(flowRunId) as Row | undefined
      return row === undefined ? null : rowToDispatch(row)
    },

    async launchedDispatchForExecution (tail) {
      const row = prepare(`SELECT * FROM dispatches WHERE state = 'launched' AND execution_name LIKE ? ESCAPE '\\' ORDER BY created_at DESC LIMIT 1`).get(`%/${escapeLike(tail)}`) as Row | undefined
      return row === undefined ? null : rowToDispatch(row)
    },

    async transition (id, name, patch, event, options) {
      const to = targetOf(name, options?.to)
      const from = sourcesOf(name, options?.from)
      return inTransaction(() => {
        const at = now()
        const state = currentState(id, options?.lease, at)
        if (state === null || !from.includes(state)) return null
        const moved = update(id, to, patch, at, options)
        appendEvent(id, at, to, state, to, event)
        return moved
      })
    },

    async note (id, type, patch, event, options) {
      return inTransaction(() => {
        const at = now()
        if (currentState(id, options?.lease, at) === null) return null
        const noted = update(id, null, patch, at, options)
        appendEvent(id, at, type, null, null, event)
        return noted
      })
    },

    async acquire (id, states, owner, ttlMs) {
      const marks = states.map(() => '?').join(', ')
      return inTransaction(() => {
        const at = now()
        const before = selectById.get(id) as Row | undefined
        if (before === undefined) return null
        const row = prepare(`UPDATE dispatches SET lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = ?
          WHERE id = ? AND state IN (${marks}) AND (lease_expires_at IS NULL OR lease_expires_at <= ?) RETURNING *`)
          .get(owner, expiry(at, ttlMs), id, ...states, at) as Row | undefined
        if (row === undefined) return null
        const dispatch = rowToDispatch(row)
        const previous = rowToDispatch(before).lease
        if (previous !== null) {
          appendEvent(id, at, 'lease_taken_over', null, null,
            { detail: `taken over by ${owner}: the lease of ${previous.owner} (token ${previous.token}) expired at ${previous.expiresAt}` })
        }
        return { dispatch, lease: { dispatchId: id, owner, token: dispatch.lease!.token, expiresAt: dispatch.lease!.expiresAt } }
      })
    },

    async renew (lease, ttlMs) {
      const at = now()
      const row = prepare(`UPDATE dispatches SET lease_expires_at = ? WHERE id = ? AND lease_token = ? AND lease_owner = ?
        AND lease_expires_at > ? RETURNING lease_expires_at`).get(expiry(at, ttlMs), lease.dispatchId, lease.token, lease.owner, at) as Row | undefined
      return row === undefined ? null : { ...lease, expiresAt: String(row.lease_expires_at) }
    },

    async release (lease) {
      prepare('UPDATE dispatches SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_token = ?').run(lease.dispatchId, lease.token)
    },

    async requestCancel (id) {
      const marks = FINAL_STATES.map(() => '?').join(', ')
      return inTransaction(() => {
        const at = now()
        const row = prepare(`UPDATE dispatches SET cancel_requested_at = ?, updated_at = ?
          WHERE id = ? AND cancel_requested_at IS NULL AND state NOT IN (${marks}) RETURNING *`).get(at, at, id, ...FINAL_STATES) as Row | undefined
        if (row === undefined) return null
        appendEvent(id, at, 'cancel_requested', null, null, { detail: 'cancellation of the flow run was requested' })
        return rowToDispatch(row)
      })
    },

    async exclusively (key, fn) {
      // One process owns the file, so an in-process queue per key is the whole lock.
      return await locks.run(key, fn)
    },

    async listEvents (id) {
      const rows = prepare('SELECT * FROM dispatch_events WHERE dispatch_id = ? ORDER BY seq').all(id) as Row[]
      return rows.map(rowToEvent) satisfies DispatchEvent[]
    },

    async listActionable (states, now, limit, after) {
      const marks = states.map(() => '?').join(', ')
      const page = after === undefined ? '' : 'AND (updated_at > ? OR (updated_at = ? AND id > ?))'
      const rows = prepare(`SELECT * FROM dispatches WHERE state IN (${marks}) AND (due_at IS NULL OR due_at <= ?)
        AND (lease_expires_at IS NULL OR lease_expires_at <= ?) ${page} ORDER BY updated_at ASC, id ASC LIMIT ?`)
        .all(...states, now, new Date().toISOString(), ...(after === undefined ? [] : [after.updatedAt, after.updatedAt, after.id]), limit) as Row[]
      return rows.map(rowToDispatch)
    },

    async summarizePool (pool) {
      const counts = Object.fromEntries((prepare('SELECT state, COUNT(*) AS n FROM dispatches WHERE pool = ? GROUP BY state')
        .all(pool) as Array<{ state: string, n: number }>).map(r => [r.state, Number(r.n)]))
      const last = prepare('SELECT MAX(created_at) AS at FROM dispatches WHERE pool = ?').get(pool) as { at: string | null }
      const launches = prepare(`SELECT COALESCE(scheduled_at, received_at) AS due, launched_at FROM dispatches WHERE pool = ? AND launched_at IS NOT NULL
        ORDER BY launched_at DESC LIMIT 100`).all(pool) as Array<{ due: string, launched_at: string }>
      return {
        counts,
        lastDispatchAt: last.at,
        recentLatenciesMs: launches.map(r => Date.parse(r.launched_at) - Date.parse(r.due))
      }
    },

    async prune (before) {
      const marks = FINAL_STATES.map(() => '?').join(', ')
      const result = prepare(`DELETE FROM dispatches WHERE state IN (${marks}) AND updated_at < ?`).run(...FINAL_STATES, before)
      return Number(result.changes)
    },

    async listDispatches (query: DispatchQuery): Promise<DispatchPage> {
      const filters = listFilters(query)
      const where = filters.map(([sql]) => sql)
      const values: SQLInputValue[] = filters.map(([, value]) => value)
      if (query.cursor !== undefined) {
        where.push('(created_at < ? OR (created_at = ? AND id < ?))')
        values.push(query.cursor.createdAt, query.cursor.createdAt, query.cursor.id)
      }
      const sql = `SELECT * FROM dispatches ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at DESC, id DESC LIMIT ?`
      const rows = prepare(sql).all(...values, query.limit + 1) as Row[]
      const items = rows.slice(0, query.limit).map(rowToDispatch)
      const last = items.at(-1)
      return { items, next: rows.length > query.limit && last !== undefined ? { createdAt: last.createdAt, id: last.id } : null }
    },

    async ping () { prepare('SELECT 1').get() },

    async close () { if (db.isOpen) db.close() }
  }
}

/**
 * Creates the database file's own directory (so the default ./data/pushpool.db works), but not its
 * parents: a path whose parent does not exist is a mistyped PUSHPOOL_STORE_URL, not a tree to make.
 */
function makeOwnDirectory (path: string): void {
  const directory = dirname(path)
  try {
    mkdirSync(directory)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return
    if (code === 'ENOENT') {
      throw new Error(`cannot open the SQLite store at ${path}: ${dirname(directory)} does not exist (pushpool creates only the ` +
        'file\'s own directory, such as ./data): create it, or correct PUSHPOOL_STORE_URL')
    }
    throw err
  }
}

function migrate (db: DatabaseSync): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)')
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map(r => r.version))
  for (const [index, sql] of SQLITE_MIGRATIONS.entries()) {
    const version = index + 1
    if (applied.has(version)) continue
    db.exec('BEGIN IMMEDIATE')
    try {
      db.exec(sql)
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, new Date().toISOString())
      db.exec('COMMIT')
    } catch (err) {
      db.exec('ROLLBACK')
      throw err
    }
  }
}
