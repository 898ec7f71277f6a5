// Resources as the emulator stores and exposes them: the REST/proto3-JSON form of the Cloud Run Admin
// API v2 and Cloud Tasks v2 (camelCase, durations like "600s", ISO timestamps, int64 as strings;
// bytes stay Buffers). protos.ts converts to and from the gRPC wire form, so nothing else in the
// emulator deals with Timestamp/Duration objects.

export type ConditionState = 'CONDITION_PENDING' | 'CONDITION_RECONCILING' | 'CONDITION_FAILED' | 'CONDITION_SUCCEEDED'

export interface Condition {
  type: string
  state: ConditionState
  message?: string
  lastTransitionTime?: string
  severity?: string
  reason?: string
  executionReason?: string
}

export interface SecretKeySelector {
  secret: string
  version?: string
}

export interface EnvVar {
  name: string
  value?: string
  valueSource?: { secretKeyRef?: SecretKeySelector }
}

export interface Container {
  name?: string
  image?: string
  command?: string[]
  args?: string[]
  env?: EnvVar[]
  resources?: { limits?: Record<string, string>, [key: string]: unknown }
  [key: string]: unknown
}

export interface TaskTemplate {
  containers?: Container[]
  maxRetries?: number
  timeout?: string
  [key: string]: unknown
}

export interface ExecutionTemplate {
  labels?: Record<string, string>
  annotations?: Record<string, string>
  parallelism?: number
  taskCount?: number
  template?: TaskTemplate
  [key: string]: unknown
}

export type CompletionStatus =
  'EXECUTION_SUCCEEDED' | 'EXECUTION_FAILED' | 'EXECUTION_RUNNING' | 'EXECUTION_PENDING' | 'EXECUTION_CANCELLED'

export interface ExecutionReference {
  name: string
  createTime: string
  completionTime?: string
  completionStatus: CompletionStatus
}

export interface Job {
  name: string
  uid: string
  generation: string
  observedGeneration: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  createTime: string
  updateTime: string
  launchStage: string
  /** Email of the authenticated caller that created it; absent when the call carried no token. */
  creator?: string
  /** Email of the authenticated caller that last changed it. */
  lastModifier?: string
  template: ExecutionTemplate
  terminalCondition: Condition
  conditions: Condition[]
  executionCount: number
  latestCreatedExecution?: ExecutionReference
  reconciling: boolean
  etag: string
  [key: string]: unknown
}

export interface Execution {
  name: string
  uid: string
  generation: string
  observedGeneration: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  createTime: string
  startTime?: string
  completionTime?: string
  updateTime: string
  deleteTime?: string
  launchStage: string
  /** Email of the authenticated caller of RunJob; absent when the call carried no token. */
  creator?: string
  job: string
  parallelism: number
  taskCount: number
  template: TaskTemplate
  reconciling: boolean
  conditions: Condition[]
  runningCount: number
  succeededCount: number
  failedCount: number
  cancelledCount: number
  retriedCount: number
  logUri: string
  etag: string
}

export interface ContainerOverride {
  name?: string
  args?: string[]
  env?: EnvVar[]
  clearArgs?: boolean
}

export interface RunOverrides {
  containerOverrides?: ContainerOverride[]
  taskCount?: number
  timeout?: string
}

/** A google.longrunning.Operation in REST form; `metadata`/`response` carry an `@type` like JSON Any. */
export interface Operation {
  name: string
  done: boolean
  metadata?: Record<string, unknown>
  response?: Record<string, unknown>
  error?: { code: number, message: string }
}

export interface RetryConfig {
  /** -1: unlimited */
  maxAttempts: number
  /** "0s": unlimited */
  maxRetryDuration: string
  minBackoff: string
  maxBackoff: string
  maxDoublings: number
}

export interface Queue {
  name: string
  rateLimits: { maxDispatchesPerSecond: number, maxBurstSize: number, maxConcurrentDispatches: number }
  retryConfig: RetryConfig
  state: 'RUNNING'
}

export type HttpMethod = 'POST' | 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS'

export interface HttpRequest {
  url: string
  httpMethod: HttpMethod
  headers?: Record<string, string>
  body?: Buffer
  oidcToken?: { serviceAccountEmail: string, audience?: string }
}

/** google.rpc.Status */
export interface RpcStatus {
  code: number
  message: string
}

export interface Attempt {
  scheduleTime?: string
  dispatchTime?: string
  responseTime?: string
  responseStatus?: RpcStatus
}

export interface Task {
  name: string
  httpRequest: HttpRequest
  scheduleTime: string
  createTime: string
  dispatchDeadline: string
  dispatchCount: number
  responseCount: number
  firstAttempt?: Attempt
  lastAttempt?: Attempt
  view: 'BASIC' | 'FULL'
}
