// Sets up and inspects Prefect objects over the REST API, the way a user or the Prefect UI would,
// so tests can arrange work pools, blocks, deployments and flow runs on a real server.

import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type {
  BaseJobTemplate, BlockDocument, Deployment, Flow, FlowRun, OrchestrationResult, State, StateType, WorkPool,
} from '../../src/prefect/types.ts'
import { testVenv } from './test-env.ts'

// Tests building a GCP Credentials block want both at hand.
import { serviceAccountKey } from '../../src/devstack/service-account-key.ts'
export { serviceAccountKey }
export type { ServiceAccountKey } from '../../src/devstack/service-account-key.ts'

export type CloudRunPoolType = 'cloud-run-v2' | 'cloud-run'

export interface StateCreate {
  type: StateType
  name?: string
  message?: string
  state_details?: { scheduled_time?: string, [key: string]: unknown }
}

export interface ServedPoolOptions {
  concurrencyLimit?: number
  jobVariables?: Record<string, unknown>
  /** The block's key; a fresh one for the project by default. */
  serviceAccountInfo?: Record<string, unknown>
  /** No GCP Credentials block: pushpool's own identity, in PUSHPOOL_GCP_PROJECT. */
  keyless?: boolean
  /** Variables added to the pool's template, by name (their JSON Schema, with a default). */
  variables?: Record<string, Record<string, unknown>>
}

export interface CreateDeploymentOptions {
  name: string
  flowId: string
  workPoolName: string
  jobVariables?: Record<string, unknown>
  path?: string
  entrypoint?: string
  pullSteps?: Array<Record<string, unknown>>
  parameters?: Record<string, unknown>
  /** Schedules the server's scheduler service turns into runs. */
  schedules?: DeploymentScheduleCreate[]
}

/** One of Prefect's schedule kinds: `{ interval: seconds, anchor_date }`, `{ cron }` or `{ rrule }`. */
export type Schedule =
  | { interval: number, anchor_date?: string, timezone?: string }
  | { cron: string, timezone?: string, day_or?: boolean }
  | { rrule: string, timezone?: string }

export interface DeploymentScheduleCreate {
  schedule: Schedule
  active?: boolean
  slug?: string
  parameters?: Record<string, unknown>
}

export interface DeploymentSchedule {
  id: string
  deployment_id: string
  schedule: Schedule
  active: boolean
  slug: string | null
}

/** A flow run with the fields that tell a scheduler-made run from others. */
export interface FlowRunDetail extends FlowRun {
  auto_scheduled: boolean
  /** `{ type: 'SCHEDULE', id: <deployment schedule id> }` for a run the scheduler inserted. */
  created_by: { id: string | null, type: string | null, display_value: string | null } | null
}

/** A deployment as returned by the API, with the fields pushpool itself does not read. */
export interface DeploymentDetail extends Deployment {
  path: string | null
  entrypoint: string | null
  pull_steps: Array<Record<string, unknown>> | null
}

export interface GcpCredentialsData {
  service_account_info: Record<string, unknown>
  project: string
}

/** A non-2xx answer from the Prefect API. */
export class PrefectRequestError extends Error {
  readonly status: number
  readonly body: string
  constructor (method: string, path: string, status: number, body: string) {
    super(`${method} ${path} → HTTP ${status}: ${body.slice(0, 500)}`)
    this.name = new.target.name
    this.status = status
    this.body = body
  }
}

const POLL_MS = 200
/** The connection was closed under the request (undici's UND_ERR_SOCKET, or a reset). */
function closedUnderUs (err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } } | null)?.cause?.code
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET'
}

const BUSY_STATUSES = new Set([429, 502, 503])
const BUSY_PATIENCE_MS = 120_000
/** Tries of a read that Prefect answers 500: a fault of the moment, seen on a busy machine. */
const READ_TRIES_ON_500 = 3

/** A request that only reads: a GET, or one of the API's POST …/filter (and …/count) queries. */
function onlyReads (method: string, path: string): boolean {
  return method === 'GET' || (method === 'POST' && /\/(filter|count)\/?(\?|$)/.test(path))
}

// Shared by every PrefectFixtures in the process: the CLI takes ~3 s and the answer never changes.
const defaultTemplates = new Map<CloudRunPoolType, Promise<BaseJobTemplate>>()

export class PrefectFixtures {
  readonly apiUrl: string
  readonly #authorization: string

  constructor (apiUrl: string, authString: string) {
    this.apiUrl = apiUrl.replace(/\/+$/, '')
    this.#authorization = `Basic ${Buffer.from(authString).toString('base64')}`
  }

  /**
   * `path` is relative to the API root, e.g. `/flows/`. Resolves to undefined for an empty body.
   * 429, 502 and 503 are retried as Prefect's own client retries them (exponential backoff from
   * 1 s with jitter, Retry-After honoured), but for as long as BUSY_PATIENCE_MS rather than five
   * times: on SQLite the server answers 503 while concurrent writes collide ("database is locked"),
   * and on a machine busy with other work that can last far longer than a quiet run suggests. Such
   * a reply means the request was not applied, so any request may be repeated. A read answered
   * 500 is tried again too, up to READ_TRIES_ON_500 times: under a busy machine the shared server
   * has answered a read (POST /block_schemas/filter) 500 once, and repeating a read changes nothing.
   * A write answered 500 is not repeated, since it may have been applied. `serialize` writes the
   * body (stringifyExactJson for numbers JSON.stringify cannot write).
   */
  async request<T> (method: string, path: string, body?: unknown, serialize: (body: unknown) => string = JSON.stringify): Promise<T> {
    const giveUpAt = Date.now() + BUSY_PATIENCE_MS
    for (let attempt = 1; ; attempt++) {
      let res: Response
      try {
        res = await fetch(`${this.apiUrl}${path}`, {
          method,
          headers: {
            authorization: this.#authorization,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          body: body !== undefined ? serialize(body) : undefined,
        })
      } catch (err) {
        // A kept-alive connection the server closed as the request went out ("other side
        // closed"): the server never read it, so it is sent again on a new connection.
        if (!closedUnderUs(err) || attempt > 3) throw err
        continue
      }
      const text = await res.text()
      if (BUSY_STATUSES.has(res.status) && Date.now() < giveUpAt) {
        const retryAfter = Number(res.headers.get('retry-after'))
        const backoff = Math.min(8000, 1000 * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4)
        await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : backoff)
        continue
      }
      if (res.status === 500 && onlyReads(method, path) && attempt < READ_TRIES_ON_500) {
        await sleep(500 * attempt)
        continue
      }
      if (!res.ok) throw new PrefectRequestError(method, path, res.status, text)
      return (text === '' ? undefined : JSON.parse(text)) as T
    }
  }

  /**
   * The base job template prefect-gcp's own worker would give a new pool of this type, as printed
   * by `prefect work-pool get-default-base-job-template` from the test venv (run once per type and
   * process). A fresh copy each call, so a test may edit it.
   */
  async defaultBaseJobTemplate (type: CloudRunPoolType): Promise<BaseJobTemplate> {
    let template = defaultTemplates.get(type)
    if (!template) {
      template = readDefaultBaseJobTemplate(type)
      defaultTemplates.set(type, template)
    }
    return structuredClone(await template)
  }

  createWorkPool (name: string, type: string, baseJobTemplate: BaseJobTemplate,
    opts: { concurrencyLimit?: number } = {}): Promise<WorkPool> {
    return this.request('POST', '/work_pools/', {
      name,
      type,
      base_job_template: baseJobTemplate,
      ...(opts.concurrencyLimit !== undefined ? { concurrency_limit: opts.concurrencyLimit } : {}),
    })
  }

  /**
   * Creates a block document of the given block type (by slug) with its newest schema, and returns
   * its id. The server registers Prefect's own block types and those of installed collections
   * (prefect-gcp here) at start-up, so no `prefect block register` is needed.
   */
  async createBlockDocument (typeSlug: string, name: string, data: Record<string, unknown>): Promise<string> {
    const blockType = await this.request<{ id: string }>('GET', `/block_types/slug/${typeSlug}`)
      .catch((err: unknown) => {
        if (err instanceof PrefectRequestError && err.status === 404) {
          throw new Error(`the server has no ${typeSlug} block type; it registers block types at start-up unless ` +
            'PREFECT_SERVER_BLOCKS_REGISTER_ON_START=false (then run `prefect block register -m <module>`)', { cause: err })
        }
        throw err
      })
    const [schema] = await this.request<Array<{ id: string }>>('POST', '/block_schemas/filter', {
      block_schemas: { block_type_id: { any_: [blockType.id] } },
      limit: 1,
    })
    if (!schema) throw new Error(`the ${typeSlug} block type has no schema on this server`)
    const doc = await this.request<BlockDocument>('POST', '/block_documents/', {
      name,
      block_type_id: blockType.id,
      block_schema_id: schema.id,
      data,
    })
    return doc.id
  }

  /** A prefect-gcp GCP Credentials block, as a work pool's `credentials` default references. */
  createGcpCredentialsBlock (name: string, data: GcpCredentialsData): Promise<string> {
    return this.createBlockDocument('gcp-credentials', name, { ...data })
  }

  /** A Webhook block, which an automation's `call-webhook` action sends through. */
  createWebhookBlock (name: string, opts: { url: string, headers?: Record<string, string>, method?: string }): Promise<string> {
    return this.createBlockDocument('webhook', name, {
      url: opts.url,
      method: opts.method ?? 'POST',
      headers: opts.headers ?? {},
    })
  }

  /** Body as for `POST /automations/` (name, trigger, actions, …); returns the automation's id. */
  async createAutomation (automation: Record<string, unknown>): Promise<string> {
    return (await this.request<{ id: string }>('POST', '/automations/', automation)).id
  }

  /** Returns the flow's id; an existing flow of that name is reused (the API upserts by name). */
  async createFlow (name: string): Promise<string> {
    return (await this.request<Flow>('POST', '/flows/', { name })).id
  }

  /** Returns the deployment's id; the API upserts by (flow, name). */
  async createDeployment (opts: CreateDeploymentOptions): Promise<string> {
    const deployment = await this.request<DeploymentDetail>('POST', '/deployments/', {
      name: opts.name,
      flow_id: opts.flowId,
      work_pool_name: opts.workPoolName,
      job_variables: opts.jobVariables ?? {},
      parameters: opts.parameters ?? {},
      // What `prefect deploy` sends for a flow without parameters. Prefect releases before 3.2
      // refuse to create a run of a deployment that enforces parameters without a schema.
      parameter_openapi_schema: { title: 'Parameters', type: 'object', properties: {} },
      ...(opts.path !== undefined ? { path: opts.path } : {}),
      ...(opts.entrypoint !== undefined ? { entrypoint: opts.entrypoint } : {}),
      ...(opts.pullSteps !== undefined ? { pull_steps: opts.pullSteps } : {}),
      ...(opts.schedules !== undefined ? { schedules: opts.schedules } : {}),
    })
    return deployment.id
  }

  /**
   * What pushpool serves in tests and scripts: a cloud-run-v2 pool named `<prefix>-<random>` whose
   * `credentials` default is a new GCP Credentials block for `project`, and a deployment of a new
   * flow in it.
   */
  async servedPool (prefix: string, project: string, options: ServedPoolOptions = {}): Promise<{ pool: string, flowId: string, deploymentId: string }> {
    const pool = `${prefix}-${randomUUID().slice(0, 8)}`
    const template = await this.defaultBaseJobTemplate('cloud-run-v2')
    if (options.keyless !== true) {
      const blockId = await this.createGcpCredentialsBlock(`creds-${pool}`, { service_account_info: options.serviceAccountInfo ?? serviceAccountKey(project), project })
      template.variables.properties!.credentials.default = { $ref: { block_document_id: blockId } }
    }
    Object.assign(template.variables.properties!, options.variables)
    await this.createWorkPool(pool, 'cloud-run-v2', template, { concurrencyLimit: options.concurrencyLimit })
    const flowId = await this.createFlow(`flow-${pool}`)
    const deploymentId = await this.createDeployment({ name: `dep-${pool}`, flowId, workPoolName: pool, jobVariables: options.jobVariables ?? {} })
    return { pool, flowId, deploymentId }
  }

  /** Adds schedules to a deployment; the scheduler service creates their runs on its next loop. */
  createDeploymentSchedules (deploymentId: string, schedules: DeploymentScheduleCreate[]): Promise<DeploymentSchedule[]> {
    return this.request('POST', `/deployments/${deploymentId}/schedules`, schedules)
  }

  readDeploymentSchedules (deploymentId: string): Promise<DeploymentSchedule[]> {
    return this.request('GET', `/deployments/${deploymentId}/schedules`)
  }

  /** Removes a schedule; the server also deletes the runs it made that are still Scheduled (or Late). */
  deleteDeploymentSchedule (deploymentId: string, scheduleId: string): Promise<void> {
    return this.request('DELETE', `/deployments/${deploymentId}/schedules/${scheduleId}`)
  }

  /** The deployment's flow runs (up to `limit`, default 200), earliest expected start first. */
  readDeploymentFlowRuns (deploymentId: string, limit = 200): Promise<FlowRunDetail[]> {
    return this.request('POST', '/flow_runs/filter', {
      flow_runs: { deployment_id: { any_: [deploymentId] } },
      sort: 'EXPECTED_START_TIME_ASC',
      limit,
    })
  }

  /**
   * Creates a run the way the UI's "Run" button and `run_deployment` do, which (unlike the
   * scheduler) emits a `prefect.flow-run.Scheduled` event, so automations see it.
   */
  createFlowRun (deploymentId: string,
    opts: { jobVariables?: Record<string, unknown>, parameters?: Record<string, unknown>, state?: StateCreate } = {}): Promise<FlowRun> {
    return this.request('POST', `/deployments/${deploymentId}/create_flow_run`, {
      ...(opts.jobVariables !== undefined ? { job_variables: opts.jobVariables } : {}),
      ...(opts.parameters !== undefined ? { parameters: opts.parameters } : {}),
      ...(opts.state !== undefined ? { state: opts.state } : {}),
    })
  }

  readFlowRun (id: string): Promise<FlowRun> {
    return this.request('GET', `/flow_runs/${id}`)
  }

  readDeployment (id: string): Promise<DeploymentDetail> {
    return this.request('GET', `/deployments/${id}`)
  }

  readWorkPool (name: string): Promise<WorkPool> {
    return this.request('GET', `/work_pools/${encodeURIComponent(name)}`)
  }

  /** Every state the run has had, oldest first (the server orders them by timestamp). */
  readStates (flowRunId: string): Promise<State[]> {
    return this.request('GET', `/flow_run_states/?flow_run_id=${flowRunId}`)
  }

  setState (flowRunId: string, state: StateCreate, force = false): Promise<OrchestrationResult> {
    return this.request('POST', `/flow_runs/${flowRunId}/set_state`, { state, force })
  }

  createVariable (name: string, value: unknown): Promise<{ id: string, name: string, value: unknown }> {
    return this.request('POST', '/variables/', { name, value })
  }

  /** Polls until the run is in one of `until` (state types) or satisfies it (a predicate). */
  async waitForFlowRunState (id: string, until: StateType[] | ((run: FlowRun) => boolean),
    timeoutMs = 30_000): Promise<FlowRun> {
    const done = typeof until === 'function' ? until : (run: FlowRun) => run.state !== null && until.includes(run.state.type)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const run = await this.readFlowRun(id)
      if (done(run)) return run
      if (Date.now() > deadline) {
        const wanted = typeof until === 'function' ? 'the expected state' : until.join(' or ')
        throw new Error(`flow run ${id} did not reach ${wanted} within ${timeoutMs} ms; ` +
          `it is ${run.state?.type ?? 'stateless'} (${run.state?.name ?? '-'})`)
      }
      await sleep(POLL_MS)
    }
  }
}

async function readDefaultBaseJobTemplate (type: CloudRunPoolType): Promise<BaseJobTemplate> {
  const { prefect } = await testVenv()
  const args = ['work-pool', 'get-default-base-job-template', '--type', type]
  const { code, stdout, stderr } = await capture(prefect, args)
  if (code !== 0) throw new Error(`prefect ${args.join(' ')} failed (exit ${code}):\n${stderr || stdout}`)
  return JSON.parse(stdout) as BaseJobTemplate
}

function capture (command: string, args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: withoutPrefectSettings() })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8') })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

// The CLI needs no server for this; a PREFECT_API_URL left in the test's environment must not
// make it try one.
function withoutPrefectSettings (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PREFECT_')))
}
