// The Prefect REST calls `pushpool setup` needs beyond what the dispatcher's client reads: creating
// and updating work pools, block documents and automations. Reads the dispatcher also makes go
// through its PrefectClient; the writes here fail with the same error classes, so a caller handles
// one kind of Prefect failure whichever module made the call.
import { setTimeout as sleep } from 'node:timers/promises'
import { PrefectClient, PrefectRequestError, PrefectUnavailable } from '../prefect/client.ts'
import type { BaseJobTemplate, BlockDocument, WorkPool } from '../prefect/types.ts'
import { toPlainJson } from '../prefect/exact-json.ts'

export interface PrefectConnection {
  apiUrl: string
  authString: string | null
  apiKey: string | null
}

export interface WorkPoolCreate {
  name: string
  type: string
  base_job_template: BaseJobTemplate
  concurrency_limit?: number
}

export interface WorkPoolUpdate {
  base_job_template?: BaseJobTemplate
  concurrency_limit?: number
}

/** The fields of an automation that `POST /automations/` and `PUT /automations/{id}` take. */
export interface AutomationBody {
  name: string
  description: string
  enabled: boolean
  tags: string[]
  trigger: Record<string, unknown>
  actions: Array<Record<string, unknown>>
  actions_on_trigger: Array<Record<string, unknown>>
  actions_on_resolve: Array<Record<string, unknown>>
}

export interface Automation extends AutomationBody {
  id: string
  created: string
}

export interface DeploymentRef {
  flowName: string
  deploymentName: string
}

// Setup writes a handful of objects once, so it can afford to wait longer than the dispatcher,
// which answers a webhook within Prefect's 10 s.
const TIMEOUT_MS = 15_000
// A SQLite-backed server answers 503 while its database is locked; the write was not applied.
const RETRY_STATUSES = new Set([429, 502, 503])
const RETRY_DELAYS_MS = [200, 600, 1800]

export class SetupPrefectApi {
  readonly apiUrl: string
  readonly reads: PrefectClient
  readonly #headers: Record<string, string>

  constructor (connection: PrefectConnection) {
    this.apiUrl = connection.apiUrl.replace(/\/+$/, '')
    this.reads = new PrefectClient({ ...connection, timeoutMs: TIMEOUT_MS })
    this.#headers = { 'content-type': 'application/json' }
    // The auth string wins over an API key, as in Prefect's own client and in PrefectClient.
    if (connection.authString !== null) {
      this.#headers.authorization = `Basic ${Buffer.from(connection.authString).toString('base64')}`
    } else if (connection.apiKey !== null) {
      this.#headers.authorization = `Bearer ${connection.apiKey}`
    }
  }

  /** The server's version, or null where the API has no /admin/version (it is only shown to the user). */
  async serverVersion (): Promise<string | null> {
    try {
      return await this.reads.readServerVersion()
    } catch (err) {
      if (err instanceof PrefectRequestError && err.status === 404) return null
      throw err
    }
  }

  /** Plain JSON numbers: setup compares the template with its own and writes it back, and never renders it. */
  async readWorkPool (name: string): Promise<WorkPool | null> {
    return toPlainJson(await this.reads.readWorkPool(name)) as WorkPool | null
  }

  async createWorkPool (pool: WorkPoolCreate): Promise<void> {
    await this.send('POST', '/work_pools/', pool)
  }

  async updateWorkPool (name: string, update: WorkPoolUpdate): Promise<void> {
    await this.send('PATCH', `/work_pools/${encodeURIComponent(name)}`, update)
  }

  /** With `secrets`, the block's secret fields come back in clear, so they can be compared. */
  readBlockDocument (typeSlug: string, name: string, secrets: boolean): Promise<BlockDocument | null> {
    const path = `/block_types/slug/${encodeURIComponent(typeSlug)}/block_documents/name/${encodeURIComponent(name)}`
    return this.send('GET', `${path}?include_secrets=${secrets}`)
  }

  /**
   * Creates a block document with the newest schema of its type. The server registers the block
   * types of Prefect and of installed collections at start-up, so the type is normally there.
   */
  async createBlockDocument (typeSlug: string, name: string, data: Record<string, unknown>): Promise<string> {
    const blockType = await this.send<{ id: string }>('GET', `/block_types/slug/${encodeURIComponent(typeSlug)}`)
    if (blockType === null) throw new PrefectRequestError(`Prefect has no "${typeSlug}" block type: run \`prefect block register -m prefect.blocks.webhook\` against it`, 404)
    // The server lists a type's schemas newest first.
    const schemas = await this.send<Array<{ id: string }>>('POST', '/block_schemas/filter',
      { block_schemas: { block_type_id: { any_: [blockType.id] } }, limit: 1 })
    const schema = schemas?.[0]
    if (schema === undefined) throw new PrefectRequestError(`Prefect's "${typeSlug}" block type has no schema`, 404)
    const created = await this.send<{ id: string }>('POST', '/block_documents/',
      { name, block_type_id: blockType.id, block_schema_id: schema.id, data })
    return required(created, 'POST /block_documents/').id
  }

  /** Replaces the block's data as a whole, so a header dropped from `data` is dropped from the block. */
  async replaceBlockData (id: string, data: Record<string, unknown>): Promise<void> {
    await this.send('PATCH', `/block_documents/${encodeURIComponent(id)}`, { data, merge_existing_data: false })
  }

  /** Oldest first, so that when a name is duplicated the first one is the one kept. */
  async automationsNamed (name: string): Promise<Automation[]> {
    const found = await this.send<Automation[]>('POST', '/automations/filter',
      { automations: { name: { any_: [name] } }, limit: 50 })
    return (found ?? []).sort((a, b) => a.created.localeCompare(b.created))
  }

  async createAutomation (body: AutomationBody): Promise<string> {
    return required(await this.send<{ id: string }>('POST', '/automations/', body), 'POST /automations/').id
  }

  async replaceAutomation (id: string, body: AutomationBody): Promise<void> {
    await this.send('PUT', `/automations/${encodeURIComponent(id)}`, body)
  }

  async deleteAutomation (id: string): Promise<void> {
    await this.send('DELETE', `/automations/${encodeURIComponent(id)}`)
  }

  /** A deployment in the pool, to name in the "try it" hint; null when the pool has none. */
  async someDeploymentIn (pool: string): Promise<DeploymentRef | null> {
    const deployments = await this.send<Array<{ name: string, flow_id: string }>>('POST', '/deployments/filter',
      { work_pools: { name: { any_: [pool] } }, limit: 1 })
    const deployment = deployments?.[0]
    if (deployment === undefined) return null
    const flow = await this.reads.readFlow(deployment.flow_id)
    return flow === null ? null : { flowName: flow.name, deploymentName: deployment.name }
  }

  /** One request, repeated on the statuses that mean it was not applied. A GET of something absent resolves to null. */
  private async send<T>(method: string, path: string, body?: unknown): Promise<T | null> {
    for (const delay of RETRY_DELAYS_MS) {
      try {
        return await this.sendOnce<T>(method, path, body)
      } catch (err) {
        if (!(err instanceof PrefectUnavailable) || err.status === null || !RETRY_STATUSES.has(err.status)) throw err
        await sleep(delay)
      }
    }
    return await this.sendOnce<T>(method, path, body)
  }

  private async sendOnce<T>(method: string, path: string, body?: unknown): Promise<T | null> {
    const route = `${method} ${path.split('?')[0]}`
    let response: Response
    try {
      response = await fetch(`${this.apiUrl}${path}`, {
        method,
        headers: this.#headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS)
      })
    } catch (err) {
      const why = err instanceof Error && err.name === 'TimeoutError' ? `timed out after ${TIMEOUT_MS} ms` : 'is unreachable'
      throw new PrefectUnavailable(`Prefect API ${route} ${why}`, null, { cause: err })
    }
    // A read of something absent is an answer; a write that finds no route means a wrong base URL.
    if (response.status === 404 && method === 'GET') {
      await response.body?.cancel()
      return null
    }
    const text = await response.text()
    if (response.ok) return text === '' ? null : parseJson<T>(text, route, this.apiUrl)
    if (response.status === 404) {
      throw new PrefectRequestError(`Prefect API ${route} answered 404: is PREFECT_API_URL (${this.apiUrl}) the API URL, usually ending in /api?`, 404)
    }
    if (response.status === 429 || response.status >= 500) {
      throw new PrefectUnavailable(`Prefect API ${route} answered ${response.status}`, response.status)
    }
    if (response.status === 401 || response.status === 403) {
      const detail = detailOf(text)
      throw new PrefectRequestError(response.status === 401
        ? 'Prefect refused the credentials (401): check PREFECT_API_AUTH_STRING or PREFECT_API_KEY'
        : `Prefect API ${route} is forbidden (403)${detail === '' ? '' : `: ${detail}`}`, response.status)
    }
    throw new PrefectRequestError(`Prefect API ${route} answered ${response.status}: ${detailOf(text)}`, response.status)
  }
}

function parseJson<T> (text: string, route: string, apiUrl: string): T {
  try {
    return JSON.parse(text) as T
  } catch {
    throw new PrefectRequestError(`Prefect API ${route} answered something that is not JSON: ` +
      `is PREFECT_API_URL (${apiUrl}) the API URL, usually ending in /api?`, 200)
  }
}

/** FastAPI puts its reason under `detail`; anything else is shown as sent, shortened. */
function detailOf (text: string): string {
  try {
    const detail = (JSON.parse(text) as { detail?: unknown }).detail
    if (detail !== undefined) return (typeof detail === 'string' ? detail : JSON.stringify(detail)).slice(0, 500)
  } catch {}
  return text.slice(0, 500)
}

function required<T> (value: T | null, route: string): T {
  if (value === null) throw new PrefectRequestError(`Prefect API ${route} answered 404`, 404)
  return value
}
