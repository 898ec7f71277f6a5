// Wires the stores to a loopback gRPC server and a loopback HTTP server, and exposes the test-facing
// Emulator handle.
import * as grpc from '@grpc/grpc-js'
import { ContainerLogs } from './container-logs.ts'
import { executionEndEntry } from './execution-end.ts'
import { ExecutionStore, runOperationResult, type HeldOutcome } from './executions.ts'
import { CallPolicy, type FaultRule } from './faults.ts'
import { startHttpSide } from './http.ts'
import { IamCredentials, type TokenCreators } from './iam-credentials.ts'
import { IdTokenIssuer } from './id-tokens.ts'
import { LogStore, type LogEntry } from './log-entries.ts'
import { loggingRoutes } from './logging-api.ts'
import { metadataRoutes, type MetadataServerOptions } from './metadata-server.ts'
import { JobStore } from './jobs.ts'
import { parseExecutionName } from './names.ts'
import { CERTS_PATH, oauth2Routes } from './oauth2.ts'
import { OperationStore } from './operations.ts'
import { PushSubscription, type PushConfig, type PushDelivery } from './pubsub-push.ts'
import { fromWire, methodTypes, serviceDefinition, SERVICE, toWire, TYPE_URL, warmUp, type Plain, type ServiceName } from './protos.ts'
import { RpcError } from './rpc-error.ts'
import { SecretStore } from './secrets.ts'
import { serviceHandlers, type CallContext, type Handlers } from './services.ts'
import { baseProcessEnv } from './task-env.ts'
import { TaskQueues, type TaskDelivery, type TaskEnd } from './task-queues.ts'
import type { Execution, Job, Queue, Task } from './types.ts'

export interface EmulatorLogger {
  info (...args: unknown[]): void
  warn (...args: unknown[]): void
}

export interface EmulatorOptions {
  /** Default '127.0.0.1' */
  host?: string
  /** gRPC port. Default 0 (ephemeral) */
  port?: number
  /** HTTP port (REST APIs and certificates). Default 0 (ephemeral) */
  httpPort?: number
  /** How executions progress. 'process': run the container's command+args as a local child process with the
   *  execution's env (exit 0 → succeeded, non-zero → failed). 'hold': stay running until the test calls
   *  finishExecution(). 'succeed': succeed at once. Default 'hold'. */
  executions?: 'process' | 'hold' | 'succeed'
  /** Extra env given to every child process before the container env (e.g. PATH with a venv's bin first).
   *  Child processes also get the emulator's own PATH and HOME unless this overrides them. */
  processEnv?: Record<string, string>
  /** Images whose name matches this regex make the execution fail like a missing image (CONTAINER_MISSING). */
  missingImagePattern?: RegExp
  /** Cloud Tasks: how long the name of a finished or deleted task stays taken. Default 1 h, Google's ~1 h for
   *  queues made through the API. */
  taskDedupWindowMs?: number
  /** Cloud Tasks: cut every delivery off after this long, whatever its dispatch_deadline (at least 15 s on
   *  Google), so a test of a worker that never answers need not wait that long. Default: no cap. */
  taskDispatchDeadlineCapMs?: number
  /** How long a new job takes to be reconciled: its CreateJob operation stays open that long, so a client's
   *  long-running-operation poller calls GetOperation as it must against Cloud Run. Default 0: done at once. */
  jobReconcileMs?: number
  /** Off by default. When set, each execution that ends (succeeded, failed, cancelled, timed out) is pushed
   *  as Cloud Run's System Event audit entry through a log sink → Pub/Sub → push subscription would push it:
   *  a Pub/Sub push envelope whose data is the LogEntry JSON (docs/execution-end-push.md). */
  executionEndPush?: ExecutionEndPushOptions
  /** IAM: service account → members (`serviceAccount:…`, `user:…` or an email) holding
   *  roles/iam.serviceAccountTokenCreator on it, which IAM Credentials checks hop by hop. Default: none. */
  tokenCreators?: TokenCreators
  /** Serve the GCE metadata server's token, email and project-id routes on the HTTP side, for a workload
   *  running as this service account (GCE_METADATA_HOST=httpEndpoint). Default: not served. */
  metadataServer?: MetadataServerOptions
  logger?: EmulatorLogger
}

export interface ExecutionEndPushOptions extends PushConfig {
  /** The push subscription's name in the envelope; default `projects/{project}/subscriptions/execution-end` */
  subscription?: string
}

export interface Emulator {
  readonly port: number
  /** gRPC 'host:port' (Cloud Run, Operations, Secret Manager, Cloud Tasks) */
  readonly endpoint: string
  /** HTTP 'host:port' */
  readonly httpEndpoint: string
  /** 'http://host:port', the base of every REST API the emulator serves */
  readonly httpUrl: string
  /** Where the ID-token certificates are served as Google serves https://www.googleapis.com/oauth2/v1/certs
   *  (PUSHPOOL_GOOGLE_CERTS_URL). The JWK form is at /oauth2/v3/certs. */
  readonly certsUrl: string
  /** A Google-shaped ID token for a service account, signed with the key served at certsUrl. */
  idToken (serviceAccountEmail: string, audience: string): string
  /** An OAuth access token the emulator takes as `principal`'s (what the metadata server gives a workload):
   *  the source credential of an Impersonated client pointed at httpUrl. */
  accessToken (principal: string): string
  /** Grants `member` roles/iam.serviceAccountTokenCreator on `serviceAccount`. */
  grantTokenCreator (serviceAccount: string, member: string): void
  addFault (rule: FaultRule): void
  clearFaults (): void
  /** Per-method rate limit: above `perMinute` calls in a sliding 60 s window → RESOURCE_EXHAUSTED. */
  setRateLimit (method: string, perMinute: number | null): void
  /** Count of calls per method name since start/reset (including faulted ones). */
  calls (): Record<string, number>
  /** Whom each gRPC call was made as, by method, since start/reset: the principal of its bearer token
   *  (`authorization` metadata), '' for a call without one. Cloud Run records it as `creator`. */
  callers (): Record<string, string[]>
  resetCalls (): void
  /** Stored jobs as plain objects (camelCase, like the REST JSON). */
  jobs (): Job[]
  executions (): Execution[]
  execution (name: string): Execution | undefined
  /** Resolves with the execution once it has finished (completionTime set). */
  waitForExecution (name: string): Promise<Execution>
  /** Captured stdout+stderr (last 256 KiB) of a 'process' execution. */
  logs (executionName: string): string
  /** Every Cloud Logging entry the emulator holds (what entries.list at httpUrl serves), oldest first. */
  logEntries (): LogEntry[]
  /** Ends a running execution ('hold' mode, or to cut a process short). */
  finishExecution (name: string, outcome: HeldOutcome): void
  /** Adds a new version (creating the secret if needed); `latest` then resolves to it. */
  putSecret (project: string, secretId: string, value: string | Buffer): void
  /** Cloud Tasks queues. */
  queues (): Queue[]
  /** Cloud Tasks tasks not yet finished or deleted, in the FULL view (bodies included). */
  tasks (): Task[]
  /** Every request sent for a task, oldest first: url, method, headers (Authorization included), body, status. */
  taskDeliveries (): TaskDelivery[]
  /** Resolves once the task succeeded (a 2xx answer), used up its retries, or was deleted. */
  waitForTask (name: string): Promise<TaskEnd>
  /** Every push of an execution's end (executionEndPush), oldest first, with the endpoint's answer. */
  executionEndPushes (): PushDelivery[]
  /** Resolves with the first acknowledged push of this execution's end. */
  waitForExecutionEndPush (executionName: string): Promise<PushDelivery>
  /** Kills child processes and stops the server. */
  close (): Promise<void>
}

export async function startEmulator (options: EmulatorOptions = {}): Promise<Emulator> {
  const issuer = await IdTokenIssuer.create()
  const secrets = new SecretStore()
  const jobs = new JobStore()
  const operations = new OperationStore()
  const logStore = new LogStore()
  const push = options.executionEndPush
    ? new PushSubscription(options.executionEndPush, (email, audience) => issuer.mint({ email, audience }))
    : undefined
  const ended = new Set<string>()
  /** The end of an execution goes to Cloud Logging, and through the sink to the push subscription. */
  const announceEnd = (execution: Execution): void => {
    if (ended.has(execution.name)) return
    ended.add(execution.name)
    const entry = logStore.append(executionEndEntry(execution))
    const { project } = parseExecutionName(execution.name)
    const subscription = options.executionEndPush?.subscription ?? `projects/${project}/subscriptions/execution-end`
    // A log sink to Pub/Sub publishes the LogEntry JSON, with the entry's timestamp as an attribute.
    push?.publish(subscription, Buffer.from(JSON.stringify(entry)), { 'logging.googleapis.com/timestamp': entry.timestamp }, execution.name)
  }
  const executions = new ExecutionStore({
    mode: options.executions ?? 'hold',
    processEnv: { ...baseProcessEnv(), ...options.processEnv },
    missingImagePattern: options.missingImagePattern,
    secrets,
    output: new ContainerLogs(logStore),
    onChange: execution => {
      jobs.recordExecutionUpdate(execution, parseExecutionName(execution.name).jobName)
      operations.refresh(TYPE_URL.execution, execution, runOperationResult(execution))
      if (execution.completionTime) announceEnd(execution)
    }
  })
  const iam = new IamCredentials(issuer, options.tokenCreators)
  const tasks = new TaskQueues({
    issuer,
    dedupWindowMs: options.taskDedupWindowMs ?? 3600_000,
    ...(options.taskDispatchDeadlineCapMs ? { dispatchDeadlineCapMs: options.taskDispatchDeadlineCapMs } : {})
  })
  const policy = new CallPolicy()
  const callers = new Map<string, string[]>()
  /** The caller of a gRPC call, by its bearer token. Unlike Cloud Run the emulator takes a call without one (no
   *  caller), but a token it never issued is refused. */
  const callerOf = (method: string, metadata: grpc.Metadata): CallContext => {
    const authorization = metadata.get('authorization')[0]
    const token = typeof authorization === 'string' ? /^Bearer\s+(\S+)$/i.exec(authorization)?.[1] : undefined
    const caller = token === undefined ? null : iam.principalOf(token)
    callers.set(method, [...callers.get(method) ?? [], caller ?? ''])
    return { caller }
  }
  const server = new grpc.Server()
  const handlers = serviceHandlers({ jobs, executions, operations, secrets, tasks }, { jobReconcileMs: options.jobReconcileMs ?? 0 })
  for (const service of Object.values(SERVICE)) {
    server.addService(serviceDefinition(service, Object.keys(handlers[service])), implement(service, handlers[service], policy, callerOf, options.logger))
  }
  const host = options.host ?? '127.0.0.1'
  const address = host.includes(':') ? `[${host}]` : host
  const [port, http] = await Promise.all([
    bind(server, `${address}:${options.port ?? 0}`),
    startHttpSide(host, options.httpPort ?? 0, [
      ...oauth2Routes(issuer), ...loggingRoutes(logStore), ...iam.routes(),
      ...(options.metadataServer ? metadataRoutes(options.metadataServer, iam) : [])
    ], policy,
      (route, error) => options.logger?.warn(`emulator: ${route} failed unexpectedly`, error))
  ])
  const httpUrl = `http://${address}:${http.port}`
  warmUp()
  let closed = false

  return {
    port,
    endpoint: `${address}:${port}`,
    httpEndpoint: `${address}:${http.port}`,
    httpUrl,
    certsUrl: `${httpUrl}${CERTS_PATH.pem}`,
    idToken: (email, audience) => issuer.mint({ email, audience }),
    accessToken: principal => iam.accessToken(principal).accessToken,
    grantTokenCreator: (serviceAccount, member) => iam.grantTokenCreator(serviceAccount, member),
    addFault: rule => policy.addFault(rule),
    clearFaults: () => policy.clearFaults(),
    setRateLimit: (method, perMinute) => policy.setRateLimit(method, perMinute),
    calls: () => policy.calls(),
    callers: () => Object.fromEntries([...callers].map(([method, principals]) => [method, [...principals]])),
    resetCalls: () => {
      policy.resetCalls()
      callers.clear()
    },
    jobs: () => jobs.all(),
    executions: () => executions.all(),
    execution: name => executions.find(name),
    waitForExecution: name => executions.waitFor(name),
    logs: name => executions.logs(name),
    logEntries: () => logStore.all(),
    finishExecution: (name, outcome) => executions.finish(name, outcome),
    putSecret: (project, secretId, value) => { secrets.put(project, secretId, value) },
    queues: () => tasks.queues(),
    tasks: () => tasks.tasks(),
    taskDeliveries: () => tasks.deliveries(),
    waitForTask: name => tasks.waitForTask(name),
    executionEndPushes: () => push?.deliveries() ?? [],
    waitForExecutionEndPush: name => push
      ? push.waitForAck(name)
      : Promise.reject(new Error('The emulator was started without executionEndPush.')),
    close: async () => {
      if (closed) return
      closed = true
      executions.killAll()
      operations.close()
      tasks.close()
      push?.close()
      // Clients keep their channels (and keep-alive sockets) open; a graceful shutdown would wait for them.
      server.forceShutdown()
      http.server.closeAllConnections()
      await new Promise<void>(resolve => http.server.close(() => resolve()))
    }
  }
}

const QUOTA_SERVICE: Record<ServiceName, string> = {
  [SERVICE.jobs]: 'run.googleapis.com',
  [SERVICE.executions]: 'run.googleapis.com',
  [SERVICE.operations]: 'run.googleapis.com',
  [SERVICE.secretManager]: 'secretmanager.googleapis.com',
  [SERVICE.tasks]: 'cloudtasks.googleapis.com'
}

/** Wraps each REST-form handler with the call policy and the wire ⇄ REST conversion. */
function implement (service: ServiceName, handlers: Handlers, policy: CallPolicy,
  callerOf: (method: string, metadata: grpc.Metadata) => CallContext, logger: EmulatorLogger | undefined): grpc.UntypedServiceImplementation {
  const quotaService = QUOTA_SERVICE[service]
  return Object.fromEntries(Object.entries(handlers).map(([method, handler]) => {
    const handle = handler as (request: Plain, context: CallContext) => unknown
    const unary: grpc.handleUnaryCall<Plain, Plain> = (call, callback) => {
      // Resolved on the first call: the descriptors are parsed when a client first needs them.
      const types = methodTypes(service, method)
      policy.invoke(method, quotaService, () => handle(fromWire(types.request, call.request), callerOf(method, call.metadata)))
        .then(response => toWire(types.response, response as Plain))
        .then(wire => callback(null, wire), (error: unknown) => callback(toServiceError(error, method, logger)))
    }
    return [method, unary]
  }))
}

function toServiceError (error: unknown, method: string, logger: EmulatorLogger | undefined): grpc.ServerErrorResponse {
  if (error instanceof RpcError) return Object.assign(new Error(error.message), { code: error.code, details: error.message })
  logger?.warn(`emulator: ${method} failed unexpectedly`, error)
  const message = error instanceof Error ? error.message : String(error)
  return Object.assign(new Error(message), { code: grpc.status.INTERNAL, details: message })
}

function bind (server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => error ? reject(error) : resolve(port))
  })
}
