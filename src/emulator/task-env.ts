// The environment a task's container sees: plain values, secrets resolved from the emulator's own
// Secret Manager, and the CLOUD_RUN_* variables Cloud Run injects into every task.
import type { SecretStore } from './secrets.ts'
import type { Container } from './types.ts'

export interface TaskIdentity {
  project: string
  job: string
  /** The execution id, e.g. `my-job-ab12c` */
  execution: string
  taskIndex: number
  taskCount: number
}

export type TaskEnv = { env: Record<string, string> } | { secretError: string }

/** Only PATH and HOME come from the emulator's own environment, so host settings (credentials…) don't leak in. */
export function baseProcessEnv (): Record<string, string> {
  const base: Record<string, string> = {}
  for (const key of ['PATH', 'HOME']) {
    const value = process.env[key]
    if (value !== undefined) base[key] = value
  }
  return base
}

export function taskEnv (container: Container, task: TaskIdentity, processEnv: Record<string, string>,
  secrets: SecretStore): TaskEnv {
  const env: Record<string, string> = { ...processEnv }
  for (const variable of container.env ?? []) {
    const ref = variable.valueSource?.secretKeyRef
    if (!ref) {
      env[variable.name] = variable.value ?? ''
      continue
    }
    const versionName = secrets.versionNameFor(ref, task.project)
    try {
      env[variable.name] = secrets.access(versionName).payload.data.toString('utf8')
    } catch {
      return { secretError: `Secret ${versionName} was not found (referenced by env var ${variable.name}).` }
    }
  }
  return {
    env: {
      ...env,
      CLOUD_RUN_JOB: task.job,
      CLOUD_RUN_EXECUTION: task.execution,
      CLOUD_RUN_TASK_INDEX: String(task.taskIndex),
      CLOUD_RUN_TASK_ATTEMPT: '0',
      CLOUD_RUN_TASK_COUNT: String(task.taskCount)
    }
  }
}
