// The shared store: PostgreSQL through a pg Pool, for several pushpool instances (Cloud Run scales
// out) writing one ledger. Exactly-once rests on the database, not on any instance: the unique key
// decides which insert wins, and each transition is a compare-and-set on the row's state.
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import {
  StoreUnavailable, type DispatchEvent, type DispatchPage, type DispatchPatch, type DispatchQuery, type EventInput, type Lease, type NewDispatch, type NoteOptions,
  type Store
} from './store.ts'
import { FINAL_STATES, sourcesOf, targetOf, type DispatchState } from './transitions.ts'
import { POSTGRES_MIGRATIONS } from './migrations.ts'
import { rowToDispatch, rowToEvent, patchColumns, listFilters, escapeLike, leaseAssignments, type Row } from './rows.ts'
import { redactUrl, scrubPasswords } from './redact-url.ts'
import { KeyedQueue } from '../util/keyed-queue.ts'
import { RetryLater } from '../failures.ts'

// Any fixed 64-bit number, the same in every instance: whoever holds it applies the migrations.
const MIGRATION_LOCK_ID = 0x7075_7368_706f_6f6cn // "pushpool"

const JSONB_OID = 3802

/** How long `exclusively` waits for another instance's turn before it gives up. */
const EXCLUSIVE_WAIT_MS = 8000

// jsonb comes back as text so that rows.ts parses both backends' JSON alike; pg's own parser would
// hand over a JSON string scalar already parsed, and rows.ts would then parse it a second time.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === JSONB_OID ? (value: string) => value : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser
}

type Queryable = Pick<pg.PoolClient, 'query'>

export async function openPostgresStore (url: string): Promise<Store> {
  const connections = new pg.Pool({
    connectionString: url,
    types,
    application_name: 'pushpool',
    // Per instance. Queries are short and the slow work (Prefect, Cloud Run) happens outside
    // transactions, so a few connections serve many requests; the deploy caps instances to match.
    max: 5,
    // /readyz and a webhook must fail within Prefect's 10 s rather than wait for a dead database.
    connectionTimeoutMillis: 5000
  })
  // An idle connection that the server closes (failover, restart) emits 'error' on the pool, which
  // has already dropped it and the next query opens a new one. Without a listener, Node would
  // treat the event as an uncaught exception and stop the process.
  connections.on('error', () => {})
  // The connections `exclusively` waits on for its advisory locks; see there.
  const lockConnections = new pg.Pool({ connectionString: url, types, application_name: 'pushpool-locks', max: 2, connectionTimeoutMillis: 5000 })
  lockConnections.on('error', () => {})
  const locks = new KeyedQueue()
  try {
    await migrate(connections)
  } catch (err) {
    await Promise.all([connections.end(), lockConnections.end()])
    throw openError(url, err)
  }

  const one = async (db: Queryable, sql: string, values: unknown[]): Promise<Row | null> =>
    ((await db.query(sql, values)).rows[0] as Row | undefined) ?? null

  let closed = false

  return unavailableWhenUnreachable({
    kind: 'postgres',

    async createDispatch (input: NewDispatch) {
      const lease = input.leasedTo
      // The database clock, not this instance's: rows written by several instances order by one time.
      // Without a lease, the null time makes a null expiry.
      const inserted = await one(connections, `WITH inserted AS (
          INSERT INTO dispatches (id, key, flow_run_id, flow_run_name, pool, deployment_id, scheduled_at, state, attempts, due_at,
            received_at, created_at, updated_at, lease_owner, lease_token, lease_expires_at)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, now(), now(), $12, $13, now() + make_interval(secs => $14::double precision / 1000))
          ON CONFLICT (key) DO NOTHING RETURNING *
        ), logged AS (${eventOf('inserted', '$8::text', 'NULL', '$8::text', '$11::text', 'NULL')})
        SELECT * FROM inserted`,
      [randomUUID(), input.key, input.flowRunId, input.flowRunName, input.pool, input.deploymentId, input.scheduledAt ?? null, input.state,
        input.dueAt, input.receivedAt, input.detail, lease?.owner ?? null, lease === undefined ? 0 : 1, lease?.ttlMs ?? null])
      if (inserted !== null) return { dispatch: rowToDispatch(inserted), created: true }
      // ON CONFLICT waited for the winning insert to commit, so a new statement sees its row.
      const existing = await one(connections, 'SELECT * FROM dispatches WHERE key = $1', [input.key])
      if (existing === null) throw new Error(`dispatch ${input.key} conflicted on insert but cannot be read`)
      return { dispatch: rowToDispatch(existing), created: false }
    },

    async getDispatch (id) {
      const row = await one(connections, 'SELECT * FROM dispatches WHERE id = $1', [id])
      return row === null ? null : rowToDispatch(row)
    },

    async latestDispatchForFlowRun (flowRunId) {
      const row = await one(connections, 'SELECT * FROM dispatches WHERE flow_run_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1', [flowRunId])
      return row === null ? null : rowToDispatch(row)
    },

    async launchedDispatchForExecution (tail) {
      const row = await one(connections, `SELECT * FROM dispatches WHERE state = 'launched' AND execution_name LIKE $1 ESCAPE '\\' ORDER BY created_at DESC LIMIT 1`, [`%/${escapeLike(tail)}`])
      return row === null ? null : rowToDispatch(row)
    },

    async transition (id, name, patch, event, options) {
      const to = targetOf(name, options?.to)
      const from = sourcesOf(name, options?.from)
      const values: unknown[] = [id, [...from], to, event.detail, replyOf(event)]
      const fence = fencedBy(options?.lease, values)
      const set = assignmentsOf(patch, options, values, ['state = $3', 'updated_at = now()'])
      // The lock gives the state the event records as `from`; the update sees the row as locked.
      const row = await one(connections, `WITH locked AS (
          SELECT id, state FROM dispatches WHERE id = $1${fence} FOR UPDATE
        ), moved AS (
          UPDATE dispatches AS d SET ${set} FROM locked WHERE d.id = locked.id AND locked.state = ANY($2::text[])
          RETURNING d.*, locked.state AS previous_state
        ), logged AS (${eventOf('moved', '$3::text', 'previous_state', '$3::text', '$4::text', '$5::jsonb')})
        SELECT * FROM moved`, values)
      return row === null ? null : rowToDispatch(row)
    },

    async note (id, type, patch, event, options) {
      const values: unknown[] = [id, type, event.detail, replyOf(event)]
      const fence = fencedBy(options?.lease, values)
      const set = assignmentsOf(patch, options, values, ['updated_at = now()'])
      const row = await one(connections, `WITH noted AS (
          UPDATE dispatches SET ${set} WHERE id = $1${fence} RETURNING *
        ), logged AS (${eventOf('noted', '$2::text', 'NULL', 'NULL', '$3::text', '$4::jsonb')})
        SELECT * FROM noted`, values)
      return row === null ? null : rowToDispatch(row)
    },

    // Lease times are the database's clock, so instances whose clocks differ agree on expiry.
    async acquire (id, states, owner, ttlMs) {
      // The locked row is the lease as it was, which a takeover's event names.
      const row = await one(connections, `WITH locked AS (
          SELECT id, lease_owner, lease_token, lease_expires_at FROM dispatches WHERE id = $1 FOR UPDATE
        ), taken AS (
          UPDATE dispatches AS d SET lease_owner = $2, lease_token = d.lease_token + 1,
            lease_expires_at = now() + make_interval(secs => $3::double precision / 1000)
          FROM locked WHERE d.id = locked.id AND d.state = ANY($4::text[]) AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= now())
          RETURNING d.*, locked.lease_owner AS previous_owner, locked.lease_token AS previous_token, locked.lease_expires_at AS previous_expires_at
        ), logged AS (${eventOf('taken', "'lease_taken_over'", 'NULL', 'NULL',
          `'taken over by ' || $2::text || ': the lease of ' || previous_owner || ' (token ' || previous_token || ') expired at ' ||
            to_char(previous_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`, 'NULL')}
          WHERE previous_owner IS NOT NULL AND previous_expires_at IS NOT NULL)
        SELECT * FROM taken`, [id, owner, ttlMs, [...states]])
      if (row === null) return null
      const dispatch = rowToDispatch(row)
      return { dispatch, lease: { dispatchId: id, owner, token: dispatch.lease!.token, expiresAt: dispatch.lease!.expiresAt } }
    },

    async renew (lease, ttlMs) {
      const row = await one(connections, `UPDATE dispatches SET lease_expires_at = now() + make_interval(secs => $4::double precision / 1000)
        WHERE id = $1 AND lease_token = $2 AND lease_owner = $3 AND lease_expires_at > now() RETURNING lease_expires_at`,
      [lease.dispatchId, lease.token, lease.owner, ttlMs])
      return row === null ? null : { ...lease, expiresAt: (row.lease_expires_at as Date).toISOString() }
    },

    async release (lease) {
      await connections.query('UPDATE dispatches SET lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_token = $2',
        [lease.dispatchId, lease.token])
    },

    async requestCancel (id) {
      const row = await one(connections, `WITH marked AS (
          UPDATE dispatches SET cancel_requested_at = now(), updated_at = now()
          WHERE id = $1 AND cancel_requested_at IS NULL AND NOT (state = ANY($2::text[])) RETURNING *
        ), logged AS (${eventOf('marked', "'cancel_requested'", 'NULL', 'NULL', "'cancellation of the flow run was requested'", 'NULL')})
        SELECT * FROM marked`, [id, [...FINAL_STATES]])
      return row === null ? null : rowToDispatch(row)
    },

    async exclusively (key, fn) {
      // A transaction-scoped advisory lock, held while `fn` runs, serialises every instance on the
      // database; the transaction does nothing else. It lives on a connection of its own pool, so
      // callers waiting for it never take the connections `fn` itself needs; and callers in this
      // process queue here first, so at most one of them waits in the database per key. A lock not
      // had within lock_timeout (or no connection to wait on) is RetryLater: the caller tries later
      // rather than hold a webhook past Prefect's 10 s.
      return await locks.run(key, async () => {
        let locked = false
        try {
          return await inTransaction(lockConnections, async db => {
            await db.query(`SET LOCAL lock_timeout = '${EXCLUSIVE_WAIT_MS}ms'`)
            await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`pushpool:${key}`])
            locked = true
            return await fn()
          })
        } catch (err) {
          if (locked) throw err
          throw new RetryLater(`the ${key} lock could not be had within ${EXCLUSIVE_WAIT_MS} ms: ${(err as Error).message}`, { cause: err })
        }
      })
    },

    async listEvents (id) {
      const { rows } = await connections.query('SELECT * FROM dispatch_events WHERE dispatch_id = $1 ORDER BY seq', [id])
      return (rows as Row[]).map(rowToEvent) satisfies DispatchEvent[]
    },

    async listActionable (states, now, limit, after) {
      const page = after === undefined ? '' : 'AND (updated_at, id) > ($4, $5)'
      const { rows } = await connections.query(`SELECT * FROM dispatches WHERE state = ANY($1::text[]) AND (due_at IS NULL OR due_at <= $2)
        AND (lease_expires_at IS NULL OR lease_expires_at <= now()) ${page} ORDER BY updated_at ASC, id ASC LIMIT $3`, [[...states], now, limit, ...(after === undefined ? [] : [after.updatedAt, after.id])])
      return (rows as Row[]).map(rowToDispatch)
    },

    async summarizePool (pool) {
      const [counts, last, launches] = await Promise.all([
        connections.query<{ state: DispatchState, n: number }>('SELECT state, count(*)::integer AS n FROM dispatches WHERE pool = $1 GROUP BY state', [pool]),
        connections.query<{ at: Date | null }>('SELECT max(created_at) AS at FROM dispatches WHERE pool = $1', [pool]),
        connections.query<{ due: Date, launched_at: Date }>(`SELECT COALESCE(scheduled_at, received_at) AS due, launched_at FROM dispatches
          WHERE pool = $1 AND launched_at IS NOT NULL ORDER BY launched_at DESC LIMIT 100`, [pool])
      ])
      return {
        counts: Object.fromEntries(counts.rows.map(r => [r.state, r.n])),
        lastDispatchAt: last.rows[0]?.at?.toISOString() ?? null,
        recentLatenciesMs: launches.rows.map(r => r.launched_at.getTime() - r.due.getTime())
      }
    },

    async prune (before) {
      const result = await connections.query('DELETE FROM dispatches WHERE state = ANY($1::text[]) AND updated_at < $2', [[...FINAL_STATES], before])
      return result.rowCount ?? 0
    },

    async listDispatches (query: DispatchQuery): Promise<DispatchPage> {
      const values: unknown[] = []
      const where = listFilters(query).map(([sql, value]) => {
        values.push(value)
        return sql.replace('?', `$${values.length}`)
      })
      if (query.cursor !== undefined) {
        values.push(query.cursor.createdAt, query.cursor.id)
        where.push(`(created_at, id) < ($${values.length - 1}, $${values.length})`)
      }
      values.push(query.limit + 1)
      const { rows } = await connections.query(`SELECT * FROM dispatches ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at DESC, id DESC LIMIT $${values.length}`, values)
      const items = (rows as Row[]).slice(0, query.limit).map(rowToDispatch)
      const last = items.at(-1)
      return { items, next: rows.length > query.limit && last !== undefined ? { createdAt: last.createdAt, id: last.id } : null }
    },

    async ping () { await connections.query('SELECT 1') },

    async close () {
      if (closed) return
      closed = true
      await Promise.all([connections.end(), lockConnections.end()])
    }
  })
}

// SQLSTATE classes of a database that cannot be reached or will not serve now: connection
// exceptions (08), operator intervention such as a shutdown or restart (57P0x), too many connections.
const UNREACHABLE_SQLSTATE = /^(08|57P0)|^53300$/
const UNREACHABLE_NODE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND'])

/**
 * The database cannot be reached (a restart, a failover, connections exhausted, a timeout): the
 * caller may try again later, so it is StoreUnavailable (RetryLater), never a bug to report as 500.
 */
function unavailableWhenUnreachable (store: Store): Store {
  const isUnreachable = (err: unknown): boolean => {
    const code = (err as { code?: unknown } | null)?.code
    if (typeof code === 'string' && (UNREACHABLE_SQLSTATE.test(code) || UNREACHABLE_NODE.has(code))) return true
    // pg-pool's own: a connection it could not make or that ended under it carries no code.
    return code === undefined && err instanceof Error && /Connection terminated|timeout exceeded when trying to connect/i.test(err.message)
  }
  const guarded = { ...store } as Record<string, unknown>
  for (const [name, method] of Object.entries(store)) {
    if (typeof method !== 'function' || name === 'exclusively') continue
    guarded[name] = async (...args: unknown[]) => {
      try {
        return await (method as (...a: unknown[]) => Promise<unknown>).apply(store, args)
      } catch (err) {
        if (!isUnreachable(err)) throw err
        throw new StoreUnavailable(`the PostgreSQL store cannot be reached: ${(err as Error).message}`, { cause: err })
      }
    }
  }
  return guarded as unknown as Store
}

// Each write is one statement, its event inserted by a data-modifying WITH beside it: PostgreSQL
// runs a statement atomically, so the row and its event commit together as a transaction's would,
// in one round trip rather than five (BEGIN, lock, update, event, COMMIT). A write made ~10 per
// dispatch, on the deployed store each one a round trip to the database. now() is the statement's
// start, so an event's time equals the updated_at written beside it.

/** The INSERT of an event for each row of the WITH query `rows` (`type` … `reply` are SQL expressions over it). */
function eventOf (rows: string, type: string, from: string, to: string, detail: string, reply: string): string {
  return `INSERT INTO dispatch_events (dispatch_id, at, type, from_state, to_state, detail, reply)
          SELECT id, now(), ${type}, ${from}, ${to}, ${detail}, ${reply} FROM ${rows}`
}

/** An event's reply as a jsonb parameter. */
const replyOf = (event: EventInput): string | null => event.reply === undefined ? null : JSON.stringify(event.reply)

/**
 * Fencing: under `lease`, the condition that the lease is still this one's and has not expired, its
 * token added to `values`; nothing without one.
 */
function fencedBy (lease: Lease | undefined, values: unknown[]): string {
  if (lease === undefined) return ''
  values.push(lease.token)
  return ` AND lease_token = $${values.length} AND lease_expires_at > now()`
}

/** The SET list of a write: the patch, what the options ask of the lease, then `fixed`; the values are added to `values`. */
function assignmentsOf (patch: DispatchPatch, options: NoteOptions | undefined, values: unknown[], fixed: string[]): string {
  const { assignments, values: own } = patchColumns(patch)
  leaseAssignments(options, assignments, own, heldOnFromNow)
  const set = positional([...assignments, ...fixed], values.length + 1)
  values.push(...own)
  return set
}

/** A lease held on from the write, on the database's clock, as renew's. */
const heldOnFromNow = (holdMs: number): { assignment: string, value: unknown } =>
  ({ assignment: 'lease_expires_at = now() + make_interval(secs => ?::double precision / 1000)', value: holdMs })

/** Joins `col = ?` assignments, numbering their placeholders `$first`, `$first + 1`, … */
function positional (assignments: string[], first: number): string {
  let next = first
  return assignments.map(a => a.replace('?', () => `$${next++}`)).join(', ')
}

// One transaction under a transaction-scoped advisory lock: when several instances start together,
// one applies what is missing and the others wait, then find every version recorded. DDL is
// transactional in PostgreSQL, so a failed migration leaves no half-made schema.
async function migrate (pool: pg.Pool): Promise<void> {
  await inTransaction(pool, async db => {
    await db.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID.toString()])
    await db.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)')
    const { rows } = await db.query<{ version: number }>('SELECT version FROM schema_migrations')
    const applied = new Set(rows.map(r => r.version))
    for (const [index, sql] of POSTGRES_MIGRATIONS.entries()) {
      const version = index + 1
      if (applied.has(version)) continue
      await db.query(sql)
      await db.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())', [version])
    }
  })
}

async function inTransaction<T> (pool: pg.Pool, fn: (client: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    // A connection that cannot even roll back is discarded rather than handed to the next caller.
    await client.query('ROLLBACK').catch((rollbackError: Error) => { broken = rollbackError })
    throw err
  } finally {
    client.release(broken)
  }
}

// The driver's error is not kept as `cause`: its fields are the driver's to choose, and the error
// may be logged whole. Only its code and message travel, with any password masked.
function openError (url: string, err: unknown): Error {
  const code = typeof err === 'object' && err !== null && 'code' in err ? ` (${String(err.code)})` : ''
  const message = err instanceof Error ? err.message : String(err)
  return new Error(`cannot open the PostgreSQL store at ${redactUrl(url)}: ${scrubPasswords(message, url)}${code}`)
}
