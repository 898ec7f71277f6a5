// The RPC handlers of each gRPC service, in REST form (server.ts converts from and to the wire form).
// Handlers only orchestrate the stores; the behaviour lives in jobs.ts, executions.ts, operations.ts, secrets.ts
// and task-queues.ts.
import type { ExecutionStore } from './executions.ts'
import type { JobInput, JobStore } from './jobs.ts'
import { parseExecutionName, parseJobName } from './names.ts'
import type { OperationStore } from './operations.ts'
import { SERVICE, TYPE_URL, type ServiceName } from './protos.ts'
import { failedPrecondition, invalidArgument } from './rpc-error.ts'
import type { Secret, SecretPayloadInput, SecretStore } from './secrets.ts'
import type { QueueInput, TaskInput, TaskQueues, TaskView } from './task-queues.ts'
import type { RunOverrides } from './types.ts'

export interface ControlPlane {
  jobs: JobStore
  executions: ExecutionStore
  operations: OperationStore
  secrets: SecretStore
  tasks: TaskQueues
}

/** Who made a call: the principal of its bearer token, null for a call without one. */
export interface CallContext {
  caller: string | null
}

/** Each handler takes its own request type; `never` lets them share one map. */
export type Handlers = Record<string, (request: never, context: CallContext) => unknown>

interface NameRequest { name: string }
interface ListRequest { parent: string, pageSize?: number, pageToken?: string }

/** How the control plane's own work takes time. */
export interface ControlPlaneTiming {
  /** How long Cloud Run takes to reconcile a new job: its CreateJob operation stays open that long. */
  jobReconcileMs: number
}

export function serviceHandlers (plane: ControlPlane, timing: ControlPlaneTiming): Record<ServiceName, Handlers> {
  return {
    [SERVICE.jobs]: jobsHandlers(plane, timing),
    [SERVICE.executions]: executionsHandlers(plane),
    [SERVICE.operations]: operationsHandlers(plane),
    [SERVICE.secretManager]: secretManagerHandlers(plane),
    [SERVICE.tasks]: tasksHandlers(plane)
  }
}

function jobsHandlers ({ jobs, executions, operations }: ControlPlane, { jobReconcileMs }: ControlPlaneTiming): Handlers {
  return {
    CreateJob: ({ parent, jobId, job, validateOnly }: { parent: string, jobId?: string, job?: JobInput, validateOnly?: boolean }, { caller }: CallContext) => {
      const created = jobs.create(parent, jobId, job ?? {}, { validateOnly, caller })
      // A validate-only request creates nothing to reconcile.
      return operations.completedAfter(parent, TYPE_URL.job, created, validateOnly === true ? 0 : jobReconcileMs)
    },
    GetJob: ({ name }: NameRequest) => jobs.get(name),
    ListJobs: ({ parent, pageSize, pageToken }: ListRequest) => {
      const { items, nextPageToken } = page(jobs.list(parent), pageSize, pageToken)
      return { jobs: items, nextPageToken }
    },
    UpdateJob: ({ job, allowMissing, validateOnly }: { job?: JobInput, allowMissing?: boolean, validateOnly?: boolean }, { caller }: CallContext) => {
      const updated = jobs.update(job ?? {}, { allowMissing, validateOnly, caller })
      return operations.completed(parseJobName(updated.name).parent, TYPE_URL.job, updated)
    },
    DeleteJob: ({ name }: NameRequest) => {
      jobs.get(name)
      if (executions.hasRunning(name)) {
        throw failedPrecondition(`Job '${parseJobName(name).job}' has running executions. Cancel them before deleting the job.`)
      }
      executions.deleteAllOf(name)
      return operations.completed(parseJobName(name).parent, TYPE_URL.job, jobs.delete(name))
    },
    RunJob: ({ name, overrides }: { name: string, overrides?: RunOverrides }, { caller }: CallContext) => {
      const execution = executions.create(jobs.get(name), overrides, caller)
      jobs.recordNewExecution(execution, name)
      // Opened before the execution starts so that its whole progress is reported by this operation.
      const operation = operations.open(parseJobName(name).parent, TYPE_URL.execution, execution)
      executions.start(execution.name)
      return operation
    }
  }
}

function executionsHandlers ({ jobs, executions, operations }: ControlPlane): Handlers {
  return {
    GetExecution: ({ name }: NameRequest) => executions.get(name),
    ListExecutions: ({ parent, pageSize, pageToken }: ListRequest) => {
      if (parseJobName(parent).job !== '-') jobs.get(parent)
      const { start, end } = pageBounds(pageSize, pageToken)
      const { items, total } = executions.listSlice(parent, start, end)
      return { executions: items, ...nextPage(end, total) }
    },
    CancelExecution: ({ name }: NameRequest) =>
      operations.completed(parseExecutionName(name).parent, TYPE_URL.execution, executions.cancel(name)),
    DeleteExecution: ({ name }: NameRequest) =>
      operations.completed(parseExecutionName(name).parent, TYPE_URL.execution, executions.delete(name))
  }
}

function operationsHandlers ({ operations }: ControlPlane): Handlers {
  return {
    GetOperation: ({ name }: NameRequest) => operations.get(name),
    ListOperations: ({ name, pageSize, pageToken }: { name: string, pageSize?: number, pageToken?: string }) => {
      const { items, nextPageToken } = page(operations.list(name), pageSize, pageToken)
      return { operations: items, nextPageToken }
    },
    DeleteOperation: ({ name }: NameRequest) => {
      operations.delete(name)
      return {}
    }
  }
}

function secretManagerHandlers ({ secrets }: ControlPlane): Handlers {
  return {
    CreateSecret: ({ parent, secretId, secret }: { parent: string, secretId?: string, secret?: Partial<Secret> }) =>
      secrets.createSecret(parent, secretId, secret),
    GetSecret: ({ name }: NameRequest) => secrets.getSecret(name),
    AddSecretVersion: ({ parent, payload }: { parent: string, payload?: SecretPayloadInput }) =>
      secrets.addVersion(parent, payload),
    GetSecretVersion: ({ name }: NameRequest) => secrets.getVersion(name),
    AccessSecretVersion: ({ name }: NameRequest) => secrets.access(name)
  }
}

interface TaskViewRequest { responseView?: TaskView | 'VIEW_UNSPECIFIED' }

/** Cloud Tasks answers with BASIC unless FULL is asked for. */
const viewOf = ({ responseView }: TaskViewRequest): TaskView => responseView === 'FULL' ? 'FULL' : 'BASIC'

/** "The maximum page size is 1000. If unspecified, the page size will be the maximum." */
const TASKS_PAGE_MAX = 1000

function tasksHandlers ({ tasks }: ControlPlane): Handlers {
  return {
    CreateQueue: ({ parent, queue }: { parent: string, queue?: QueueInput }) => tasks.createQueue(parent, queue),
    GetQueue: ({ name }: NameRequest) => tasks.getQueue(name),
    CreateTask: (request: { parent: string, task?: TaskInput } & TaskViewRequest) =>
      tasks.createTask(request.parent, request.task, viewOf(request)),
    GetTask: (request: NameRequest & TaskViewRequest) => tasks.getTask(request.name, viewOf(request)),
    DeleteTask: ({ name }: NameRequest) => {
      tasks.deleteTask(name)
      return {}
    },
    ListTasks: (request: ListRequest & TaskViewRequest) => {
      const pageSize = Math.min(request.pageSize || TASKS_PAGE_MAX, TASKS_PAGE_MAX)
      const { items, nextPageToken } = page(tasks.listTasks(request.parent, viewOf(request)), pageSize, request.pageToken)
      return { tasks: items, nextPageToken }
    },
    RunTask: (request: NameRequest & TaskViewRequest) => tasks.runTask(request.name, viewOf(request))
  }
}

/** Page tokens are opaque to clients; here they are just the offset of the next item. */
function page<T> (items: T[], pageSize = 0, pageToken = ''): { items: T[], nextPageToken?: string } {
  const { start, end } = pageBounds(pageSize, pageToken)
  return { items: items.slice(start, end), ...nextPage(end ?? items.length, items.length) }
}

/** The offsets a page covers; `end` is undefined for "to the end" (no page size). */
function pageBounds (pageSize = 0, pageToken = ''): { start: number, end: number | undefined } {
  const start = pageToken ? Number(Buffer.from(pageToken, 'base64url').toString()) : 0
  if (!Number.isInteger(start) || start < 0) throw invalidArgument(`Invalid page token '${pageToken}'.`)
  return { start, end: pageSize > 0 ? start + pageSize : undefined }
}

function nextPage (end: number | undefined, total: number): { nextPageToken?: string } {
  return end !== undefined && end < total ? { nextPageToken: Buffer.from(String(end)).toString('base64url') } : {}
}
