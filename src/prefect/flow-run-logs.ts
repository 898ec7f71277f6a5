// Flow-run log lines for a dispatched run, worded as Prefect's worker writes them where it has a
// line for the step (prefect/workers/base.py, prefect_gcp/workers/cloud_run_v2.py; Prefect 3.8,
// prefect-gcp 0.6), and pushpool's own where it does not. Each builder returns LogCreate records for
// `POST /api/logs/` (prefect/server/schemas/actions.py LogCreate) under the worker's flow-run logger,
// `prefect.flow_runs.worker` (flow_run_logger(...).getChild("worker")). Pure: see activity-writer.ts.
import type { FlowRun } from './types.ts'

export const LOG_LEVEL = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 } as const
export type LogLevel = typeof LOG_LEVEL[keyof typeof LOG_LEVEL]

/** A log line as `POST /api/logs/` takes it. The OSS server forbids extra fields (worker_id is Cloud's). */
export interface LogCreate {
  name: string
  level: number
  message: string
  /** ISO 8601 with microseconds, strictly increasing from one line to the next. */
  timestamp: string
  flow_run_id: string
}

export const WORKER_LOGGER = 'prefect.flow_runs.worker'
/** A child of the worker's logger, as Prefect's Kubernetes observer forwards a crashed pod's output under its own child. */
export const CONTAINER_LOGGER = 'prefect.flow_runs.worker.container'

/** One line a container wrote, as read back from Cloud Logging (src/cloudrun/execution-logs.ts). */
export interface ContainerLine {
  timestamp: string
  stream: 'stdout' | 'stderr' | 'system'
  /** Cloud Logging's severity, or null when the entry has none (a plain-text line). */
  severity: string | null
  text: string
}

/** The launch as Cloud Run reported it. */
export interface LaunchLog {
  job: string
  /** The execution's short id. */
  execution: string
  region: string
  /** The container's command as rendered; empty for the image's own entrypoint. */
  command: string[]
  /** True when this launch created the job (per-run mode, or a first run of a shared spec). */
  createdJob: boolean
  consoleUrl: string
}

/** The end of an execution, as the worker's watch sees it. */
export interface EndLog {
  job: string
  succeeded: boolean
  /** The Completed condition's message of a failed execution. */
  conditionMessage: string | null
  logUri: string | null
}

/** "Worker '…' submitting flow run '…'", the first line the worker writes for a run. */
export function submittingLines (workerName: string, flowRunId: string, at: Date = new Date()): LogCreate[] {
  return lines(flowRunId, at, [[LOG_LEVEL.INFO, `Worker '${workerName}' submitting flow run '${flowRunId}'`]])
}

/** pushpool's own: which dispatch took the run. */
export function claimedLines (flowRunId: string, dispatchId: string, at: Date = new Date()): LogCreate[] {
  return lines(flowRunId, at, [[LOG_LEVEL.INFO, `pushpool dispatch ${dispatchId} claimed the flow run (Prefect accepted Pending)`]])
}

/** pushpool's own: the run waits for a timer. */
export function timerArmedLines (flowRunId: string, fireAt: Date, kind: 'process' | 'cloud-tasks', at: Date = new Date()): LogCreate[] {
  const timer = kind === 'cloud-tasks' ? 'a Cloud Tasks task' : 'a timer in pushpool\'s process'
  return lines(flowRunId, at, [[LOG_LEVEL.INFO, `The flow run is due at ${fireAt.toISOString()}: ${timer} will launch it then`]])
}

/** The worker's lines from creating the job to "submitted to infrastructure", and pushpool's with the console link. */
export function launchedLines (flowRun: Pick<FlowRun, 'id' | 'name'>, launch: LaunchLog, at: Date = new Date()): LogCreate[] {
  const command = launch.command.length > 0 ? launch.command.join(' ') : 'default container command'
  return lines(flowRun.id, at, [
    ...(launch.createdJob ? [[LOG_LEVEL.INFO, `Creating Cloud Run JobV2 ${launch.job}`] as const] : []),
    [LOG_LEVEL.INFO, `Submitting Cloud Run Job V2 ${launch.job} for execution...`],
    [LOG_LEVEL.INFO, `Cloud Run Job V2 ${launch.job} submitted for execution with command: ${command}`],
    [LOG_LEVEL.INFO, `Cloud Run execution ${launch.execution} of job ${launch.job} started in ${launch.region}: ${launch.consoleUrl}`],
    [LOG_LEVEL.INFO, `Flow run '${flowRun.name}' submitted to infrastructure`]
  ])
}

/** The worker's lines when its watch sees the execution end: succeeded, or failed with the condition's message; then the logs link. */
export function endedLines (flowRunId: string, end: EndLog, at: Date = new Date()): LogCreate[] {
  return lines(flowRunId, at, [
    end.succeeded
      ? [LOG_LEVEL.INFO, `Cloud Run Job V2 ${end.job} succeeded`]
      : [LOG_LEVEL.ERROR, `Cloud Run Job V2 ${end.job} failed - ${end.conditionMessage ?? 'None'}`],
    ...(end.logUri !== null ? [[LOG_LEVEL.INFO, `Job run logs can be found on GCP at: ${end.logUri}`] as const] : [])
  ])
}

/** The worker's line when the job it watched was deleted under it. */
export function jobDeletedLines (flowRunId: string, job: string, at: Date = new Date()): LogCreate[] {
  return lines(flowRunId, at, [[LOG_LEVEL.INFO, `Cloud Run V2 Job '${job}' was deleted. The flow run will be marked based on its current state.`]])
}

/** The worker's line when it removes a per-run job (keep_job false). */
export function deletingJobLines (flowRunId: string, job: string, at: Date = new Date()): LogCreate[] {
  return lines(flowRunId, at, [[LOG_LEVEL.INFO, `Deleting completed Cloud Run Job '${job}' from Google Cloud Run...`]])
}

/** The worker's line when a launch failed for good; `reason` says why (the run is Crashed with it). */
export function submitFailedLines (flowRun: Pick<FlowRun, 'id' | 'name'>, reason: string, at: Date = new Date()): LogCreate[] {
  return lines(flowRun.id, at, [[LOG_LEVEL.ERROR, `Failed to submit flow run '${flowRun.name}' to infrastructure.\n${reason}`]])
}

/**
 * The worker's line once Prefect accepted Crashed, then, for a non-zero exit code, its resolution hint
 * (`resolution` from exit-codes.ts infrastructureExitInfo), as the worker logs it.
 */
export function crashedLines (flowRunId: string, message: string, resolution: string | null = null, at: Date = new Date()): LogCreate[] {
  return lines(flowRunId, at, [
    [LOG_LEVEL.INFO, `Reported flow run '${flowRunId}' as crashed: ${message}`],
    ...(resolution !== null ? [[LOG_LEVEL.INFO, resolution] as const] : [])
  ])
}

/** The worker's line for a run cancelled before it started; pushpool's with the reason otherwise. */
export function cancelledLines (flowRunId: string, cancelled: { pending: boolean, reason: string }, at: Date = new Date()): LogCreate[] {
  return lines(flowRunId, at, [cancelled.pending
    ? [LOG_LEVEL.INFO, `Cancelled pending flow run '${flowRunId}'`]
    : [LOG_LEVEL.INFO, `pushpool cancelled the flow run: ${cancelled.reason}`]])
}

/**
 * A failed execution's last container lines under a header, as Prefect's Kubernetes observer forwards
 * a crashed pod's (prefect_kubernetes/observer.py _send_crashed_pod_logs): one record per line, stamped
 * when written so the block stays whole after the crash lines. Each line keeps its stream, and its
 * level follows Cloud Logging's severity, else the stream (stderr ERROR, stdout and system INFO).
 * The lines must be redacted already (execution-logs.ts does).
 */
export function containerLines (flowRunId: string,
  output: { job: string, execution: string, lines: ContainerLine[], earlierOmitted: boolean, logsUrl: string | null },
  at: Date = new Date()): LogCreate[] {
  const where = `Cloud Run execution '${output.execution}' of job '${output.job}'`
  if (output.lines.length === 0) {
    return lines(flowRunId, at, [[LOG_LEVEL.WARNING, `${where} left no log lines in Cloud Logging${output.logsUrl !== null ? `: ${output.logsUrl}` : ''}`]], CONTAINER_LOGGER)
  }
  const earlier = output.earlierOmitted && output.logsUrl !== null ? `; earlier lines at ${output.logsUrl}` : ''
  return lines(flowRunId, at, [
    [LOG_LEVEL.ERROR, `Container logs from ${where}, its last ${output.lines.length} lines in Cloud Logging${earlier}:`],
    ...output.lines.map(line => [levelOf(line), `[${line.stream}] ${line.text}`] as const)
  ], CONTAINER_LOGGER)
}

const SEVERITY_LEVELS: Record<string, LogLevel> = {
  DEBUG: LOG_LEVEL.DEBUG,
  INFO: LOG_LEVEL.INFO,
  NOTICE: LOG_LEVEL.INFO,
  WARNING: LOG_LEVEL.WARNING,
  ERROR: LOG_LEVEL.ERROR,
  CRITICAL: LOG_LEVEL.CRITICAL,
  ALERT: LOG_LEVEL.CRITICAL,
  EMERGENCY: LOG_LEVEL.CRITICAL
}

function levelOf (line: ContainerLine): LogLevel {
  const bySeverity = line.severity === null ? undefined : SEVERITY_LEVELS[line.severity]
  return bySeverity ?? (line.stream === 'stderr' ? LOG_LEVEL.ERROR : LOG_LEVEL.INFO)
}

/** The last stamp given, in µs: stamps only grow in this process, so lines built one call after another sort in that order. */
let lastMicros = 0

function lines (flowRunId: string, at: Date, messages: ReadonlyArray<readonly [number, string]>, name = WORKER_LOGGER): LogCreate[] {
  return messages.map(([level, message]) => {
    lastMicros = Math.max(at.getTime() * 1000, lastMicros + 1)
    return { name, level, message, timestamp: isoMicros(lastMicros), flow_run_id: flowRunId }
  })
}

/** ISO 8601 with six fractional digits (Prefect keeps microseconds). */
function isoMicros (micros: number): string {
  const ms = Math.floor(micros / 1000)
  return `${new Date(ms).toISOString().slice(0, 23)}${String(micros - ms * 1000).padStart(3, '0')}Z`
}
