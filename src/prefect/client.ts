// The Prefect REST adapter: the only place that speaks HTTP to Prefect. Reads return null for 404;
// every other failure is typed, so the dispatcher can tell "try again later" (outage, 5xx, 429,
// timeout) from "never retry" (rejected credentials, a request Prefect refuses).
import { setTimeout as sleep } from 'node:timers/promises'
import { RetryLater, NeverRetry } from '../failures.ts'
import { KeepAliveHttp, HttpCutOff, HttpNoReply, type HttpReply } from './http.ts'
import { parseExactJson, withExactFields } from './exact-json.ts'
import type {
  BlockDocument, Deployment, Flow, FlowRun, OrchestrationResult, State, StateType, WorkPool, WorkQueue
} from './types.ts'

export interface PrefectClientOptions {
  apiUrl: string
  authString: string | null
  apiKey: string | null
  timeoutMs?: number
  /** Called once per request with a route template and the outcome, for metrics. */
  onCall?: (route: string, status: number | 'error', ms: number) => void
}

export interface StateProposal {
  type: StateType
  name: string
  message?: string
}

/** Prefect answered something other than what the request needed; never retried. */
export class PrefectRequestError extends NeverRetry {
  readonly status: number
  constructor (message: string, status: number) {
    super(message)
    this.status = status
  }
}

/** Prefect could not be reached or is overloaded; retried later. */
export class PrefectUnavailable extends RetryLater {
  /** The HTTP status, or null when no response came. */
  readonly status: number | null
  constructor (message: string, status: number | null, options?: { cause?: unknown }) {
    super(message, options)
    this.status = status
  }
}

const API_VERSION = '0.8.4'

/** Reads a reply's JSON text into the value a caller gets. */
type Decode = (text: string) => unknown

/**
 * The fields pushpool renders into jobs are read with Python's numbers (exact-json.ts), so a job
 * prints 12345678901234567890 and 1.0 as Prefect's worker does; every other field is plain JSON.
 */
const exactly = (fields: readonly string[]): Decode => text => withExactFields(parseExactJson(text), fields)
const FLOW_RUN_EXACT = ['job_variables', 'parameters'] as const
const decodeFlowRun = exactly(FLOW_RUN_EXACT)
const decodeDeployment = exactly(['job_variables'])
const decodeWorkPool = exactly(['base_job_template'])
const decodeBlockDocument = exactly(['data'])
const decodeVariable = exactly(['value'])
const decodeFlowRuns: Decode = text => (parseExactJson(text) as unknown[]).map(run => withExactFields(run, FLOW_RUN_EXACT))
const decodeScheduledRuns: Decode = text => (parseExactJson(text) as Array<{ flow_run: unknown }>)
  .map(run => ({ flow_run: withExactFields(run.flow_run, FLOW_RUN_EXACT) }))

/** Statuses Prefect's own client retries: a SQLite-backed server answers 503 while its database is locked. */
const RETRY_STATUSES = new Set([429, 502, 503])
const RETRY_DELAYS_MS = [100, 300, 900]

export class PrefectClient {
  readonly apiUrl: string
  private readonly headers: Record<string, string>
  private readonly timeoutMs: number
  private readonly onCall: PrefectClientOptions['onCall']
  private readonly http: KeepAliveHttp
  private serverVersion: Promise<string> | null = null

  /**
   * The longest one call may take: each try within the timeout (a request resent on a kept-alive
   * connection that closed under it fails at once, so it adds no timeout of its own), and the
   * waits between tries at their longest (jitter up to 1.5×).
   */
  readonly callDeadlineMs: number

  constructor (options: PrefectClientOptions) {
    this.apiUrl = options.apiUrl.replace(/\/+$/, '')
    this.timeoutMs = options.timeoutMs ?? 5000
    this.callDeadlineMs = (RETRY_DELAYS_MS.length + 1) * this.timeoutMs + RETRY_DELAYS_MS.reduce((sum, ms) => sum + ms * 1.5, 0)
    this.http = new KeepAliveHttp(this.timeoutMs)
    this.onCall = options.onCall
    this.headers = { 'content-type': 'application/json', 'x-prefect-api-version': API_VERSION }
    // The auth string wins over an API key, as in Prefect's own client.
    if (options.authString !== null) {
      this.headers.authorization = `Basic ${Buffer.from(options.authString).toString('base64')}`
    } else if (options.apiKey !== null) {
      this.headers.authorization = `Bearer ${options.apiKey}`
    }
  }

  readFlowRun (id: string): Promise<FlowRun | null> {
    return this.read(`/flow_runs/${encodeURIComponent(id)}`, '/flow_runs/{id}', decodeFlowRun)
  }

  readDeployment (id: string): Promise<Deployment | null> {
    return this.read(`/deployments/${encodeURIComponent(id)}`, '/deployments/{id}', decodeDeployment)
  }

  readFlow (id: string): Promise<Flow | null> {
    return this.read(`/flows/${encodeURIComponent(id)}`, '/flows/{id}')
  }

  readWorkPool (name: string): Promise<WorkPool | null> {
    return this.read(`/work_pools/${encodeURIComponent(name)}`, '/work_pools/{name}', decodeWorkPool)
  }

  readBlockDocument (id: string): Promise<BlockDocument | null> {
    return this.read(`/block_documents/${encodeURIComponent(id)}?include_secrets=true`, '/block_documents/{id}', decodeBlockDocument)
  }

  readBlockDocumentByName (typeSlug: string, name: string): Promise<BlockDocument | null> {
    return this.read(
      `/block_types/slug/${encodeURIComponent(typeSlug)}/block_documents/name/${encodeURIComponent(name)}?include_secrets=true`,
      '/block_types/slug/{slug}/block_documents/name/{name}', decodeBlockDocument)
  }

  /** The run's state history, oldest first. */
  async readFlowRunStates (flowRunId: string): Promise<State[]> {
    return (await this.read<State[]>(`/flow_run_states/?flow_run_id=${encodeURIComponent(flowRunId)}`, '/flow_run_states/')) ?? []
  }

  async readVariable (name: string): Promise<unknown> {
    const variable = await this.read<{ value: unknown }>(`/variables/name/${encodeURIComponent(name)}`, '/variables/name/{name}', decodeVariable)
    return variable === null ? undefined : variable.value
  }

  readWorkQueue (id: string): Promise<WorkQueue | null> {
    return this.read(`/work_queues/${encodeURIComponent(id)}`, '/work_queues/{id}')
  }

  /** Runs of a pool (optionally one queue) in the given state types. */
  async countFlowRuns (filter: { pool: string, queueId?: string, stateTypes: StateType[] }): Promise<number> {
    const body = {
      flow_runs: { state: { type: { any_: filter.stateTypes } } },
      work_pools: { name: { any_: [filter.pool] } },
      ...(filter.queueId !== undefined ? { work_pool_queues: { id: { any_: [filter.queueId] } } } : {})
    }
    return (await this.request<number>('POST', '/flow_runs/count', '/flow_runs/count', body)) ?? 0
  }

  /**
   * What a polling worker would be handed now: due runs of the pool, within its and its queues'
   * concurrency limits and skipping paused queues (Prefect applies all of that in its query).
   */
  async getScheduledFlowRuns (pool: string, scheduledBefore: Date, limit: number): Promise<FlowRun[]> {
    const runs = await this.request<Array<{ flow_run: FlowRun }>>('POST', `/work_pools/${encodeURIComponent(pool)}/get_scheduled_flow_runs`,
      '/work_pools/{name}/get_scheduled_flow_runs', { scheduled_before: scheduledBefore.toISOString(), limit }, decodeScheduledRuns)
    return (runs ?? []).map(r => r.flow_run)
  }

  /**
   * Scheduled-type runs of the pool due before `before`, soonest first, whatever the pool's
   * concurrency limits: the runs a timer is to be armed for ahead of time.
   */
  async listUpcomingFlowRuns (pool: string, before: Date, limit: number): Promise<FlowRun[]> {
    const body = {
      flow_runs: { state: { type: { any_: ['SCHEDULED'] } }, next_scheduled_start_time: { before_: before.toISOString() } },
      work_pools: { name: { any_: [pool] } },
      sort: 'NEXT_SCHEDULED_START_TIME_ASC',
      limit
    }
    return (await this.request<FlowRun[]>('POST', '/flow_runs/filter', '/flow_runs/filter', body, decodeFlowRuns)) ?? []
  }

  /** Marks the pool READY in Prefect's UI, as a polling worker's heartbeat does. */
  async workerHeartbeat (pool: string, workerName: string, intervalSeconds: number): Promise<void> {
    await this.request('POST', `/work_pools/${encodeURIComponent(pool)}/workers/heartbeat`, '/work_pools/{name}/workers/heartbeat',
      { name: workerName, heartbeat_interval_seconds: intervalSeconds })
  }

  /** The server's Prefect version, which sets the default image tag as in Prefect's own worker. */
  readServerVersion (): Promise<string> {
    // Asked once per client; a failure is forgotten so the next launch asks again.
    this.serverVersion ??= this.read<string>('/admin/version', '/admin/version').then(version => {
      if (typeof version !== 'string') throw new PrefectRequestError('Prefect API /admin/version returned no version', 404)
      return version
    })
    this.serverVersion.catch(() => { this.serverVersion = null })
    return this.serverVersion
  }

  /** Propose a state. `force=false` lets Prefect's orchestration rules arbitrate between claimants. */
  async setFlowRunState (id: string, state: StateProposal, force: boolean): Promise<OrchestrationResult> {
    const body = { state: { type: state.type, name: state.name, message: state.message ?? null }, force }
    const result = await this.request<OrchestrationResult>('POST', `/flow_runs/${encodeURIComponent(id)}/set_state`,
      '/flow_runs/{id}/set_state', body)
    if (result === null) throw new PrefectRequestError(`Flow run ${id} no longer exists in Prefect`, 404)
    return result
  }

  async setInfrastructurePid (id: string, infrastructurePid: string): Promise<void> {
    await this.request('PATCH', `/flow_runs/${encodeURIComponent(id)}`, '/flow_runs/{id}', { infrastructure_pid: infrastructurePid })
  }

  /** Drops the kept-alive connections. */
  close (): void {
    this.http.close()
  }

  private read<T>(path: string, route: string, decode?: Decode): Promise<T | null> {
    return this.request<T>('GET', path, route, undefined, decode)
  }

  /**
   * One logical request, retried a few times on the statuses Prefect itself marks as retryable.
   * Such a reply means the request was not applied, so even a state proposal is safe to repeat.
   */
  async request<T>(method: string, path: string, route: string = path, body?: unknown, decode: Decode = JSON.parse): Promise<T | null> {
    for (const delay of RETRY_DELAYS_MS) {
      try {
        return await this.requestOnce<T>(method, path, route, body, decode)
      } catch (err) {
        if (!(err instanceof PrefectUnavailable) || err.status === null || !RETRY_STATUSES.has(err.status)) throw err
        await sleep(delay * (0.5 + Math.random()))
      }
    }
    return await this.requestOnce<T>(method, path, route, body, decode)
  }

  private async requestOnce<T>(method: string, path: string, route: string, body: unknown, decode: Decode): Promise<T | null> {
    const started = performance.now()
    let reply: HttpReply
    try {
      reply = await this.http.send(`${this.apiUrl}${path}`, method, this.headers, body === undefined ? undefined : JSON.stringify(body))
    } catch (err) {
      this.onCall?.(`${method} ${route}`, 'error', performance.now() - started)
      // A cut-off body is as much an outage as no reply: the request may or may not have been applied.
      const why = err instanceof HttpCutOff
        ? 'reply was cut off'
        : err instanceof HttpNoReply && err.timedOut ? `timed out after ${this.timeoutMs} ms` : 'is unreachable'
      throw new PrefectUnavailable(`Prefect API ${method} ${route} ${why}`, null, { cause: err })
    }
    const { status } = reply
    let text = reply.text
    this.onCall?.(`${method} ${route}`, status, performance.now() - started)
    if (status === 404 || status === 204) return null
    if (status >= 200 && status < 300) {
      try {
        return text === '' ? null : decode(text) as T
      } catch {
        throw new PrefectRequestError(`Prefect API ${method} ${route} answered something that is not JSON: ` +
          `is PREFECT_API_URL (${this.apiUrl}) the API URL, usually ending in /api?`, status)
      }
    }
    text = text.slice(0, 300)
    if (status >= 300 && status < 400) {
      throw new PrefectRequestError(`Prefect API ${method} ${route} answered ${status}, a redirect to ${reply.location ?? '(nowhere)'}: ` +
        `set PREFECT_API_URL (${this.apiUrl}) to the URL it redirects to`, status)
    }
    if (status === 429 || status >= 500) {
      throw new PrefectUnavailable(`Prefect API ${method} ${route} answered ${status}`, status)
    }
    if (status === 401 || status === 403) {
      throw new PrefectRequestError(
        `Prefect API refused pushpool's credentials (${status}): check PREFECT_API_AUTH_STRING or PREFECT_API_KEY`, status)
    }
    throw new PrefectRequestError(`Prefect API ${method} ${route} answered ${status}: ${text}`, status)
  }
}
