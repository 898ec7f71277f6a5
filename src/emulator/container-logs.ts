// A local execution's output as Cloud Run writes a job's logs to Cloud Logging
// (https://cloud.google.com/run/docs/logging): each stdout/stderr line an entry of the `cloud_run_job`
// monitored resource (project_id, job_name, location) in run.googleapis.com/stdout or /stderr, labelled
// with the execution, task index, task attempt and instance as Cloud Run labels them (the label keys
// the Cloud Run jobs UI reads: googleapis/python-logging google/cloud/logging_v2/handlers/_monitored_resources.py),
// and the "Container called exit(N)." entry in run.googleapis.com/varlog/system. Shapes follow entries
// read from real Cloud Run jobs: a plain-text line has textPayload and no severity (DEFAULT), on stderr
// as on stdout; the exit entry is INFO for exit(0) and WARNING otherwise.
import { randomBytes } from 'node:crypto'
import type { TaskOutput } from './executions.ts'
import type { LogStore, NewLogEntry } from './log-entries.ts'
import { SEVERITY_RANK } from './log-filter.ts'
import { parseExecutionName } from './names.ts'
import type { OutputStream } from './runner.ts'
import type { Execution } from './types.ts'

/** Keys of a structured (single-line JSON) log line that Logging lifts out of jsonPayload, of those the
 *  emulator honours (https://cloud.google.com/logging/docs/structured-logging#special-payload-fields). */
const LABELS_KEY = 'logging.googleapis.com/labels'

export class ContainerLogs implements TaskOutput {
  readonly #store: LogStore
  /** One instance per execution: the emulator runs a single task, once. */
  readonly #instances = new Map<string, string>()

  constructor (store: LogStore) {
    this.#store = store
  }

  line (execution: Execution, stream: OutputStream, text: string): void {
    const base = this.#entryBase(execution, `run.googleapis.com%2F${stream}`)
    this.#store.append({ ...base, ...payloadOf(text, base.labels ?? {}) })
  }

  exited (execution: Execution, exitCode: number): void {
    const base = this.#entryBase(execution, 'run.googleapis.com%2Fvarlog%2Fsystem')
    const container = execution.template.containers?.[0]?.name || `${execution.job}-1`
    this.#store.append({
      ...base,
      severity: exitCode === 0 ? 'INFO' : 'WARNING',
      labels: { ...base.labels, container_name: container },
      textPayload: `Container called exit(${exitCode}).`
    })
  }

  #entryBase (execution: Execution, logId: string): NewLogEntry {
    const { project, location, job, execution: id } = parseExecutionName(execution.name)
    let instanceId = this.#instances.get(execution.name)
    if (!instanceId) {
      instanceId = `00${randomBytes(64).toString('hex')}`
      this.#instances.set(execution.name, instanceId)
    }
    return {
      logName: `projects/${project}/logs/${logId}`,
      resource: { type: 'cloud_run_job', labels: { project_id: project, job_name: job, location } },
      labels: {
        instanceId,
        'run.googleapis.com/execution_name': id,
        'run.googleapis.com/task_index': '0',
        'run.googleapis.com/task_attempt': '0'
      }
    }
  }
}

/** A line that is one JSON object becomes jsonPayload (its severity and labels lifted out); any other line textPayload. */
function payloadOf (text: string, labels: Record<string, string>): Partial<NewLogEntry> {
  const trimmed = text.trim()
  if (trimmed.startsWith('{')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(trimmed)
    } catch {
      parsed = undefined
    }
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      const { severity, [LABELS_KEY]: extraLabels, ...jsonPayload } = parsed as Record<string, unknown>
      const level = typeof severity === 'string' ? severity.toUpperCase() : ''
      return {
        jsonPayload,
        ...(level in SEVERITY_RANK && level !== 'DEFAULT' ? { severity: level } : {}),
        labels: { ...labels, ...stringLabels(extraLabels) }
      }
    }
  }
  return { textPayload: text }
}

function stringLabels (value: unknown): Record<string, string> {
  if (value === null || typeof value !== 'object') return {}
  return Object.fromEntries(Object.entries(value).filter((pair): pair is [string, string] => typeof pair[1] === 'string'))
}
