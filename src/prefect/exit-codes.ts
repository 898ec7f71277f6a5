// What an infrastructure exit code means, in Prefect's own words (prefect/_internal/infrastructure_exit_codes.py,
// Prefect 3.8): the worker crashes a run whose infrastructure exited non-zero with "Flow run
// infrastructure exited with non-zero status code N. <explanation>" and logs the resolution.
import { LOG_LEVEL, type LogLevel } from './flow-run-logs.ts'

export interface InfrastructureExitInfo {
  explanation: string
  resolution: string
  level: LogLevel
}

const HINTS: ReadonlyMap<number, InfrastructureExitInfo> = new Map([
  [0, { explanation: 'Process exited cleanly.', resolution: 'No action needed.', level: LOG_LEVEL.INFO }],
  [-9, {
    explanation: 'Process exited due to a SIGKILL signal. Typically caused by the operating system terminating the process for exceeding memory limits, or by manual cancellation.',
    resolution: 'Check whether the flow run exceeded its memory allocation. If running in a container, increase the memory limit. If this was intentional cancellation, no action is needed.',
    level: LOG_LEVEL.INFO
  }],
  [-15, {
    explanation: 'Process exited due to a SIGTERM signal. Typically caused by graceful shutdown or manual cancellation.',
    resolution: 'If this was caused by cancellation, no action is needed. Otherwise, check for infrastructure scaling events or deployment rollovers.',
    level: LOG_LEVEL.INFO
  }],
  [1, {
    explanation: 'Process exited with a general error.',
    resolution: 'Check the flow run logs for an unhandled exception or assertion error.',
    level: LOG_LEVEL.ERROR
  }],
  [125, {
    explanation: 'Container failed to run (Docker/OCI exit code 125).',
    resolution: 'Verify the container image exists, the entrypoint is correct, and the container runtime is healthy.',
    level: LOG_LEVEL.ERROR
  }],
  [126, {
    explanation: 'Command found but not executable (permission denied).',
    resolution: 'Check file permissions on the entrypoint script or binary. Ensure the file has the executable bit set.',
    level: LOG_LEVEL.ERROR
  }],
  [127, {
    explanation: 'Command not found.',
    resolution: 'Verify that the entrypoint command or script is installed in the execution environment. Check your PATH and container image contents.',
    level: LOG_LEVEL.ERROR
  }],
  [137, {
    explanation: 'Process was killed, likely due to an out-of-memory (OOM) condition.',
    resolution: 'Increase the memory allocation for the flow run infrastructure. In Kubernetes, raise the memory limit in the job template. In ECS, increase the task memory.',
    level: LOG_LEVEL.ERROR
  }],
  [143, {
    explanation: 'Process received SIGTERM via the container runtime. This is the containerized equivalent of exit code -15.',
    resolution: 'If this was caused by cancellation or a scaling event, no action is needed. Otherwise, check for pod evictions or ECS task stops.',
    level: LOG_LEVEL.INFO
  }],
  [247, {
    explanation: 'Process was terminated due to high memory usage.',
    resolution: 'Increase the memory allocation for the flow run infrastructure. Consider profiling memory usage to find the source of consumption.',
    level: LOG_LEVEL.ERROR
  }],
  [0xC000013A, {
    explanation: 'Process was terminated due to a Ctrl+C or Ctrl+Break signal. Typically caused by manual cancellation.',
    resolution: 'If this was intentional cancellation, no action is needed.',
    level: LOG_LEVEL.INFO
  }]
])

const UNKNOWN: InfrastructureExitInfo = {
  explanation: 'Process exited with an unexpected status code.',
  resolution: 'Check the flow run logs and infrastructure logs for more details.',
  level: LOG_LEVEL.ERROR
}

export function infrastructureExitInfo (code: number): InfrastructureExitInfo {
  return HINTS.get(code) ?? UNKNOWN
}

/** The Crashed state's message the worker proposes for a non-zero exit code. */
export function nonZeroExitMessage (code: number): string {
  return `Flow run infrastructure exited with non-zero status code ${code}. ${infrastructureExitInfo(code).explanation}`
}
