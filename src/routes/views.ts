// The public shape of a dispatch (openapi.yaml's Dispatch): snake_case, and only the fields the
// spec lists — the redacted job spec is shown by the detail route alone.
import type { Dispatch } from '../store/store.ts'

export function dispatchView (d: Dispatch): Record<string, unknown> {
  return {
    id: d.id,
    key: d.key,
    flow_run_id: d.flowRunId,
    flow_run_name: d.flowRunName,
    pool: d.pool,
    deployment_id: d.deploymentId,
    deployment_name: d.deploymentName,
    flow_name: d.flowName,
    scheduled_at: d.scheduledAt,
    state: d.state,
    attempts: d.attempts,
    due_at: d.dueAt,
    project: d.project,
    region: d.region,
    job_name: d.jobName,
    execution_name: d.executionName,
    log_uri: d.logUri,
    error: d.error,
    lease: d.lease === null ? null : { owner: d.lease.owner, expires_at: d.lease.expiresAt },
    cancel_requested_at: d.cancelRequestedAt,
    received_at: d.receivedAt,
    launched_at: d.launchedAt,
    created_at: d.createdAt,
    updated_at: d.updatedAt
  }
}
