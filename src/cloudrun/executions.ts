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
    if (failure.kind === 'missing') return { outcome: 'missing', message: 'the execution no longer exists in Cloud Run', logUri: null }
    throw failure.error
  }
  const completed = (execution.conditions as Condition[] | null | undefined ?? []).find(c => c.type === 'Completed')
  const logUri = execution.logUri ?? null
  if (execution.completionTime === null || execution.completionTime === undefined) {
    return { outcome: 'running', message: null, logUri }
  }
  const message = completed?.message ?? null
  if (Number(execution.cancelledCount ?? 0) > 0) return { outcome: 'cancelled', message, logUri }
  if (completed?.state !== undefined && completed.state !== null && SUCCEEDED.has(completed.state)) {
    return { outcome: 'succeeded', message, logUri }
  }
  return { outcome: 'failed', message, logUri }
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
