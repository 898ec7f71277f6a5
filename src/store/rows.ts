// Mapping between database rows (snake_case, JSON as text) and the Store's records. Shared by both
// backends so they cannot drift apart.
import type { Dispatch, DispatchEvent, DispatchPatch, DispatchQuery, GcpIdentityRef, NoteOptions } from './store.ts'
import type { DispatchState } from './transitions.ts'

export type Row = Record<string, unknown>

const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))
const json = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v ?? null)
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v))
const isoOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : iso(v))

export function rowToDispatch (row: Row): Dispatch {
  return {
    id: String(row.id),
    key: String(row.key),
    flowRunId: String(row.flow_run_id),
    flowRunName: str(row.flow_run_name),
    pool: String(row.pool),
    deploymentId: str(row.deployment_id),
    deploymentName: str(row.deployment_name),
    flowName: str(row.flow_name),
    scheduledAt: isoOrNull(row.scheduled_at),
    state: row.state as DispatchState,
    attempts: Number(row.attempts),
    dueAt: isoOrNull(row.due_at),
    project: str(row.project),
    region: str(row.region),
    jobName: str(row.job_name),
    executionName: str(row.execution_name),
    logUri: str(row.log_uri),
    keepJob: Number(row.keep_job ?? 0) === 1 || row.keep_job === true,
    executionMayExist: Number(row.execution_may_exist) === 1 || row.execution_may_exist === true,
    gcpIdentity: json(row.gcp_identity) as GcpIdentityRef | null,
    lease: row.lease_owner === null || row.lease_owner === undefined || row.lease_expires_at === null || row.lease_expires_at === undefined
      ? null
      : { owner: String(row.lease_owner), token: Number(row.lease_token), expiresAt: iso(row.lease_expires_at) },
    cancelRequestedAt: isoOrNull(row.cancel_requested_at),
    jobSpec: json(row.job_spec),
    error: str(row.error),
    receivedAt: iso(row.received_at),
    launchedAt: isoOrNull(row.launched_at),
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at)
  }
}

export function rowToEvent (row: Row): DispatchEvent {
  return {
    seq: Number(row.seq),
    dispatchId: String(row.dispatch_id),
    at: iso(row.at),
    type: String(row.type),
    from: (row.from_state ?? null) as DispatchState | null,
    to: (row.to_state ?? null) as DispatchState | null,
    detail: String(row.detail),
    reply: json(row.reply)
  }
}

const COLUMNS: Record<keyof DispatchPatch, string> = {
  attempts: 'attempts',
  dueAt: 'due_at',
  project: 'project',
  region: 'region',
  jobName: 'job_name',
  executionName: 'execution_name',
  logUri: 'log_uri',
  jobSpec: 'job_spec',
  error: 'error',
  launchedAt: 'launched_at',
  keepJob: 'keep_job',
  executionMayExist: 'execution_may_exist',
  deploymentName: 'deployment_name',
  flowName: 'flow_name',
  gcpIdentity: 'gcp_identity'
}

/** `col = ?` assignments for the fields a patch sets; JSON fields are serialised. */
export function patchColumns (patch: DispatchPatch): { assignments: string[], values: unknown[] } {
  const assignments: string[] = []
  const values: unknown[] = []
  for (const [field, column] of Object.entries(COLUMNS) as Array<[keyof DispatchPatch, string]>) {
    if (!(field in patch)) continue
    const value = patch[field]
    assignments.push(`${column} = ?`)
    values.push(field === 'jobSpec' || field === 'gcpIdentity'
      ? (value === null || value === undefined ? null : JSON.stringify(value))
      : typeof value === 'boolean' ? (value ? 1 : 0) : value ?? null)
  }
  return { assignments, values }
}

/** A listing's filters as `column op ?` conditions with their values, shared by both backends. */
export function listFilters (query: DispatchQuery): Array<[string, string]> {
  const filters: Array<[string, string | undefined]> = [
    ['state = ?', query.state],
    ['pool = ?', query.pool],
    ['deployment_id = ?', query.deploymentId],
    ['flow_run_id = ?', query.flowRunId],
    ['created_at >= ?', query.since],
    ['created_at < ?', query.until]
  ]
  return filters.filter((f): f is [string, string] => f[1] !== undefined)
}

/** A value for a LIKE pattern with ESCAPE '\\': its own % and _ match only themselves. */
export function escapeLike (value: string): string {
  return value.replace(/[\\%_]/g, c => `\\${c}`)
}

/**
 * The assignments that make a write do what its options ask of its lease (only a write fenced by
 * the lease may change it), added to `assignments` and `values`. `holdUntil` is the backend's own
 * `lease_expires_at = …` for a lease held on `holdMs` from the write, on the clock renew uses.
 */
export function leaseAssignments (options: NoteOptions | undefined, assignments: string[], values: unknown[],
  holdUntil: (holdMs: number) => { assignment: string, value: unknown }): void {
  const leaseAfter = options?.lease === undefined ? undefined : options.leaseAfter
  if (leaseAfter === undefined) return
  if (leaseAfter === 'release') {
    assignments.push('lease_owner = NULL', 'lease_expires_at = NULL')
    return
  }
  const { assignment, value } = holdUntil(leaseAfter.holdMs)
  assignments.push(assignment)
  values.push(value)
}
