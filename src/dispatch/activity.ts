// What pushpool does for a run, shown inside Prefect as its worker's own activity: the flow-run log
// lines and events Prefect's Cloud Run worker writes (prefect/flow-run-logs.ts, worker-events.ts),
// plus pushpool's own `pushpool.dispatch.*` events; and, for a run whose execution died under it,
// the container's last lines from Cloud Logging. Everything but the read of those lines is handed
// to the batched writer and returns at once: writing activity never slows or fails a dispatch.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Dispatch } from '../store/store.ts'
import type { FlowRun } from '../prefect/types.ts'
import type { PrefectActivityWriter } from '../prefect/activity-writer.ts'
import type { CloudRunClients } from '../gcp/clients.ts'
import type { ExecutionStatus } from '../cloudrun/executions.ts'
import type { PrefectSnapshots } from './prefect-snapshots.ts'
import { executionLinks, lastLines, type LastLines } from '../cloudrun/execution-logs.ts'
import { infrastructureExitInfo } from '../prefect/exit-codes.ts'
import {
  cancelledLines, claimedLines, containerLines, crashedLines, endedLines, launchedLines, submitFailedLines, submittingLines, timerArmedLines
} from '../prefect/flow-run-logs.ts'
import {
  dispatchCancelledEvent, dispatchClaimedEvent, dispatchCrashedEvent, dispatchLaunchedEvent, executedFlowRunEvent, executionEndedEvent,
  submittedFlowRunEvent, timerArmedEvent, type DispatchSubject, type PrefectEvent, type RunObjects, type TimerKind
} from '../prefect/worker-events.ts'

/** A crashed execution's lines are read within this; a slower Cloud Logging leaves the run without them. */
export const CRASH_LINES_MS = 5000

export interface ActivityDeps {
  writer: Pick<PrefectActivityWriter, 'log' | 'emit'>
  /** Whether events are built and sent at all (PUSHPOOL_PREFECT_EVENTS); log lines always are. */
  events: boolean
  snapshots: Pick<PrefectSnapshots, 'workPool'>
  /** The Prefect server's version, reported as the worker's `prefect.version`. */
  prefectVersion: () => Promise<string>
  workerName: string
  /** How many of a crashed execution's last lines to read; 0 reads none. */
  crashLogLines: number
  /** Cloud Logging's base URL when it is an emulator (no credentials sent); null for Google's. */
  loggingEndpoint: string | null
  /** Values blanked wherever they appear in container lines: pushpool's own Prefect credentials. */
  secrets: string[]
  log: Logger
}

/** The launch, as the dispatcher knows it once Cloud Run named the execution. */
export interface LaunchActivity {
  objects: RunObjects
  project: string
  region: string
  /** Full names: projects/…/jobs/J and …/executions/E. */
  jobName: string
  executionName: string
  command: string[]
  createdJob: boolean
}

const shortName = (name: string): string => name.split('/').at(-1) ?? name

export class DispatchActivity {
  private readonly deps: ActivityDeps

  constructor (deps: ActivityDeps) {
    this.deps = deps
  }

  /** Prefect accepted this dispatch's Pending: the worker's first line, and pushpool's claim. */
  claimed (dispatch: Dispatch): void {
    this.write(dispatch, null, subject => {
      this.deps.writer.log([...submittingLines(this.deps.workerName, dispatch.flowRunId), ...claimedLines(dispatch.flowRunId, dispatch.id)])
      this.emit(() => [dispatchClaimedEvent(subject)])
    })
  }

  /** A run not yet due waits for its timer. */
  timerArmed (dispatch: Dispatch, fireAt: Date, kind: TimerKind): void {
    this.write(dispatch, null, subject => {
      this.deps.writer.log(timerArmedLines(dispatch.flowRunId, fireAt, kind))
      this.emit(() => [timerArmedEvent(subject, { fireAt, kind })])
    })
  }

  launched (dispatch: Dispatch, launch: LaunchActivity): void {
    this.write(dispatch, launch.objects, (subject, worker) => {
      const links = executionLinks({ project: launch.project, region: launch.region, execution: launch.executionName })
      const job = shortName(launch.jobName)
      const execution = shortName(launch.executionName)
      this.deps.writer.log(launchedLines(launch.objects.flowRun, {
        job, execution, region: launch.region, command: launch.command, createdJob: launch.createdJob, consoleUrl: links.consoleUrl
      }))
      this.emit(() => {
        const submitted = submittedFlowRunEvent(worker, launch.objects)
        return [submitted, dispatchLaunchedEvent(subject, { project: launch.project, region: launch.region, job, execution, ...links }, submitted)]
      })
    })
  }

  /** A launch failed for good; the run is reported Crashed with `reason`. */
  submitFailed (dispatch: Dispatch, reason: string): void {
    this.write(dispatch, null, subject => {
      this.deps.writer.log(submitFailedLines(subject.objects.flowRun, reason))
      this.emit(() => [dispatchCrashedEvent(subject, reason)])
    })
  }

  /** pushpool cancelled the run; `execution` is the one it cancelled with it, if any. */
  cancelled (dispatch: Dispatch, reason: string, execution: string | null): void {
    this.write(dispatch, null, subject => {
      this.deps.writer.log(cancelledLines(dispatch.flowRunId, { pending: execution === null, reason }))
      this.emit(() => [dispatchCancelledEvent(subject, { reason, execution })])
    })
  }

  /**
   * The execution ended, as the worker's watch sees it end; `crash` when pushpool reported the run
   * Crashed for it, with the container's last lines when they were read.
   */
  ended (dispatch: Dispatch, flowRun: FlowRun | null, status: ExecutionStatus,
    crash: { message: string, exitCode: number | null, output: LastLines | null } | null): void {
    this.write(dispatch, flowRun, (subject, worker) => {
      const job = shortName(dispatch.jobName ?? '')
      const execution = shortName(dispatch.executionName ?? '')
      const succeeded = status.outcome === 'succeeded'
      this.deps.writer.log(endedLines(dispatch.flowRunId, { job, succeeded, conditionMessage: status.message, logUri: status.logUri ?? dispatch.logUri }))
      this.emit(() => {
        const executed = executedFlowRunEvent(worker, subject.objects, { identifier: job, statusCode: succeeded ? 0 : 1 })
        const endedEvent = executionEndedEvent(subject, {
          execution, succeeded, exitCode: crash?.exitCode ?? (succeeded ? 0 : null), durationSeconds: status.durationSeconds, condition: status.message
        }, executed)
        return crash === null ? [executed, endedEvent] : [executed, endedEvent, dispatchCrashedEvent(subject, crash.message, endedEvent)]
      })
      if (crash === null) return
      const resolution = crash.exitCode === null || crash.exitCode === 0 ? null : infrastructureExitInfo(crash.exitCode).resolution
      this.deps.writer.log(crashedLines(dispatch.flowRunId, crash.message, resolution))
      if (crash.output !== null) {
        this.deps.writer.log(containerLines(dispatch.flowRunId, { job, execution, ...crash.output, logsUrl: status.logUri ?? dispatch.logUri }))
      }
    })
  }

  /** Events are built only when they are sent: with them off, the dispatch pays nothing for them. */
  private emit (build: () => PrefectEvent[]): void {
    if (this.deps.events) this.deps.writer.emit(build())
  }

  /**
   * The last lines of a launched dispatch's execution, redacted, with the exit code Cloud Run logged;
   * null when none are wanted or Cloud Logging could not be read in time (logged, never thrown).
   */
  async lastLines (dispatch: Dispatch, status: ExecutionStatus, clients: CloudRunClients): Promise<LastLines | null> {
    const { crashLogLines, loggingEndpoint, secrets, log } = this.deps
    if (crashLogLines === 0 || dispatch.executionName === null || dispatch.jobName === null || dispatch.project === null || dispatch.region === null) return null
    // Entries are no older than the execution; a launch time less a minute bounds them as well.
    const createTime = status.createTime ?? new Date(Date.parse(dispatch.launchedAt ?? dispatch.createdAt) - 60_000).toISOString()
    try {
      return await lastLines({
        project: dispatch.project, region: dispatch.region, job: shortName(dispatch.jobName), execution: dispatch.executionName, createTime, limit: crashLogLines, secrets
      }, {
        authClient: loggingEndpoint === null ? clients.authClient : null,
        ...(loggingEndpoint !== null ? { baseUrl: loggingEndpoint } : {}),
        timeoutMs: CRASH_LINES_MS
      })
    } catch (err) {
      log.warn({ dispatch_id: dispatch.id, err: (err as Error).message }, 'could not read the crashed execution\'s log lines from Cloud Logging')
      return null
    }
  }

  /**
   * Builds and queues in the background: the worker's identity needs the server's version and the
   * pool's type, both cached after the first dispatch. A failure is logged and dropped.
   */
  private write (dispatch: Dispatch, known: FlowRun | RunObjects | null,
    build: (subject: DispatchSubject, worker: DispatchSubject['worker']) => void): void {
    const { snapshots, prefectVersion, workerName, log } = this.deps
    void (async () => {
      const objects: RunObjects = known !== null && 'flowRun' in known
        ? known
        : {
            flowRun: known ?? { id: dispatch.flowRunId, name: dispatch.flowRunName ?? dispatch.flowRunId, tags: [] },
            deployment: null,
            flow: null,
            workPool: await snapshots.workPool(dispatch.pool).catch(() => null)
          }
      const version = await prefectVersion().catch(() => 'unknown')
      const worker = { name: workerName, type: objects.workPool?.type ?? 'cloud-run-v2', prefectVersion: version }
      build({ worker, objects, dispatchId: dispatch.id }, worker)
    })().catch(err => { log.debug({ dispatch_id: dispatch.id, err: (err as Error).message }, 'could not build Prefect activity') })
  }
}
