// What Cloud Run records when a job execution ends: a System Event audit log entry (always written,
// free, cannot be disabled: https://cloud.google.com/logging/docs/audit#system-event) in
// cloudaudit.googleapis.com%2Fsystem_event on the cloud_run_job resource, methodName "/Jobs.RunJob",
// resourceName "namespaces/PROJECT/executions/EXECUTION", the execution (Admin API v1 form) as the
// response, severity ERROR and a non-zero status when it failed. Those fields are the ones
// practitioners' log sinks and alert policies key on (see docs/execution-end-push.md); the status
// messages' wording beyond "has completed successfully" and "has failed to complete" is the emulator's.
import type { NewLogEntry } from './log-entries.ts'
import { parseExecutionName } from './names.ts'
import type { Condition, Container, Execution } from './types.ts'

/** The audit entry for an execution that has just ended (completionTime set). */
export function executionEndEntry (execution: Execution): NewLogEntry {
  const { project, location, job, execution: id } = parseExecutionName(execution.name)
  const completed = execution.conditions.find(c => c.type === 'Completed')
  const succeeded = completed?.state === 'CONDITION_SUCCEEDED'
  const cancelled = execution.cancelledCount > 0
  const status = succeeded
    ? { message: `Execution ${id} has completed successfully.` }
    : cancelled
      // google.rpc.Code CANCELLED; the code of a cancelled execution's entry was not observed.
      ? { code: 1, message: `Execution ${id} was cancelled. ${completed?.message ?? ''}`.trim() }
      // 10 (ABORTED) is the code alert policies on failed executions match.
      : { code: 10, message: `Execution ${id} has failed to complete. ${completed?.message ?? ''}`.trim() }
  return {
    logName: `projects/${project}/logs/cloudaudit.googleapis.com%2Fsystem_event`,
    resource: { type: 'cloud_run_job', labels: { project_id: project, job_name: job, location } },
    severity: succeeded ? 'INFO' : 'ERROR',
    labels: { 'run.googleapis.com/execution_name': id },
    protoPayload: {
      '@type': 'type.googleapis.com/google.cloud.audit.AuditLog',
      status,
      serviceName: 'run.googleapis.com',
      methodName: '/Jobs.RunJob',
      resourceName: `namespaces/${project}/executions/${id}`,
      response: v1Execution(execution, project, job, id)
    }
  }
}

/** The execution as the Cloud Run Admin API v1 shows it (https://cloud.google.com/run/docs/reference/rest/v1/namespaces.executions). */
function v1Execution (execution: Execution, project: string, job: string, id: string): Record<string, unknown> {
  const template = execution.template
  return {
    '@type': 'type.googleapis.com/google.cloud.run.v1.Execution',
    apiVersion: 'run.googleapis.com/v1',
    kind: 'Execution',
    metadata: {
      name: id,
      namespace: project,
      uid: execution.uid,
      generation: 1,
      creationTimestamp: execution.createTime,
      labels: { ...execution.labels, 'run.googleapis.com/job': job },
      annotations: { ...execution.annotations }
    },
    spec: {
      parallelism: execution.parallelism,
      taskCount: execution.taskCount,
      template: {
        spec: {
          containers: (template.containers ?? []).map(v1Container),
          maxRetries: template.maxRetries ?? 3,
          timeoutSeconds: String(Number.parseInt(template.timeout ?? '600s')),
          ...(typeof template.serviceAccount === 'string' ? { serviceAccountName: template.serviceAccount } : {})
        }
      }
    },
    status: {
      observedGeneration: 1,
      conditions: execution.conditions.map(v1Condition),
      ...(execution.startTime ? { startTime: execution.startTime } : {}),
      ...(execution.completionTime ? { completionTime: execution.completionTime } : {}),
      ...counts(execution),
      logUri: execution.logUri
    }
  }
}

function v1Container (container: Container): Record<string, unknown> {
  return {
    ...(container.name ? { name: container.name } : {}),
    image: container.image,
    ...(container.command?.length ? { command: container.command } : {}),
    ...(container.args?.length ? { args: container.args } : {}),
    env: (container.env ?? []).map(variable => {
      const ref = variable.valueSource?.secretKeyRef
      return ref
        ? { name: variable.name, valueFrom: { secretKeyRef: { name: ref.secret, key: ref.version ?? 'latest' } } }
        : { name: variable.name, value: variable.value ?? '' }
    }),
    ...(container.resources ? { resources: container.resources } : {})
  }
}

/** v1 conditions: status True/False/Unknown, reasons in PascalCase (NON_ZERO_EXIT_CODE → NonZeroExitCode). */
function v1Condition (condition: Condition): Record<string, unknown> {
  const status = condition.state === 'CONDITION_SUCCEEDED' ? 'True' : condition.state === 'CONDITION_FAILED' ? 'False' : 'Unknown'
  const reason = condition.executionReason ?? condition.reason
  return {
    type: condition.type,
    status,
    ...(reason ? { reason: reason.toLowerCase().replace(/(^|_)([a-z])/g, (_, _sep: string, c: string) => c.toUpperCase()) } : {}),
    ...(condition.message ? { message: condition.message } : {}),
    ...(condition.lastTransitionTime ? { lastTransitionTime: condition.lastTransitionTime } : {})
  }
}

/** proto3 JSON leaves out zero counts. */
function counts (execution: Execution): Record<string, number> {
  const all = {
    succeededCount: execution.succeededCount,
    failedCount: execution.failedCount,
    cancelledCount: execution.cancelledCount,
    retriedCount: execution.retriedCount
  }
  return Object.fromEntries(Object.entries(all).filter(([, n]) => n > 0))
}
