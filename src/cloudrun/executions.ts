// Reading and steering executions after launch: what reconcile and cancellation need from Cloud
// Run. Status is derived the way Prefect's worker reads it (completionTime, then the Completed
// condition), so pushpool and Prefect agree on what "failed" means.
import type { CloudRunClients } from '../gcp/clients.ts'
import { classifyFailure } from './outcomes.ts'
import { CLOUD_RUN_CALL_MS } from './launcher.ts'

const CALL = { timeout: CLOUD_RUN_CALL_MS }

export type ExecutionOutcome = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'missing'

export interface ExecutionStatus {
  outcome: ExecutionOutcome
  /** Cloud Run's reason, e.g. "The configured timeout was reached." */
  message: string | null
  logUri: string | null
  /** When Cloud Run created the execution (ISO 8601): its log entries are no older. */
  createTime: string | null
  /** From its start to its completion, once it ended and had started. */
  durationSeconds: number | null
}

/** A protobuf Timestamp as the gRPC client decodes it. */
interface Timestamp { seconds?: number | string | { toString: () => string } | null, nanos?: number | null }

function millisOf (ts: Timestamp | null | undefined): number | null {
  if (ts === null || ts === undefined || ts.seconds === null || ts.seconds === undefined) return null
  return Number(ts.seconds.toString()) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)
}

interface Condition { type?: string | null, state?: string | number | null, message?: string | null }

// gRPC unary replies decode enums as names, LRO payloads as numbers: accept both.
const SUCCEEDED = new Set<string | number>(['CONDITION_SUCCEEDED', 4])

export async function readExecution (clients: CloudRunClients, name: string): Promise<ExecutionStatus> {
  let execution
  try {
    [execution] = await clients.executions.getExecution({ name }, CALL)
  } catch (err) {
    const failure = classifyFailure('GetExecution', err)
    if (failure.kind === 'missing') {
      return { outcome: 'missing', message: 'the execution no longer exists in Cloud Run', logUri: null, createTime: null, durationSeconds: null }
    }
    throw failure.error
  }
  const completed = (execution.conditions as Condition[] | null | undefined ?? []).find(c => c.type === 'Completed')
  const created = millisOf(execution.createTime as Timestamp | null | undefined)
  const times = { logUri: execution.logUri ?? null, createTime: created === null ? null : new Date(created).toISOString() }
  const completion = millisOf(execution.completionTime as Timestamp | null | undefined)
  if (completion === null) return { outcome: 'running', message: null, ...times, durationSeconds: null }
  const start = millisOf(execution.startTime as Timestamp | null | undefined)
  const ended = { message: completed?.message ?? null, ...times, durationSeconds: start === null ? null : Math.max(0, (completion - start) / 1000) }
  if (Number(execution.cancelledCount ?? 0) > 0) return { outcome: 'cancelled', ...ended }
  if (completed?.state !== undefined && completed.state !== null && SUCCEEDED.has(completed.state)) return { outcome: 'succeeded', ...ended }
  return { outcome: 'failed', ...ended }
}

/** Cancels an execution; one that already ended or vanished needs no cancelling. */
export async function cancelExecution (clients: CloudRunClients, name: string): Promise<'cancelled' | 'already-ended'> {
  try {
    await clients.executions.cancelExecution({ name }, CALL)
    return 'cancelled'
  } catch (err) {
    const failure = classifyFailure('CancelExecution', err)
    if (failure.kind === 'missing' || failure.kind === 'ended') return 'already-ended'
    throw failure.error
  }
}

/** Deletes a per-run job and its executions' records; a job already gone is fine. */
export async function deleteJob (clients: CloudRunClients, jobName: string): Promise<void> {
  try {
    await clients.jobs.deleteJob({ name: jobName }, CALL)
  } catch (err) {
    const failure = classifyFailure('DeleteJob', err)
    if (failure.kind !== 'missing') throw failure.error
  }
}
