// `pushpool setup` without the command line: plan each Prefect object against what the server
// holds, apply the plan in dependency order (pool, then the block the automations name, then the
// automations), and return what was done. A dry run plans and applies nothing.
import { PrefectRequestError, PrefectUnavailable } from '../prefect/client.ts'
import { planAutomations } from './automations.ts'
import { SetupPrefectApi, type DeploymentRef, type PrefectConnection } from './prefect-api.ts'
import { SetupFailure, type ObjectKind, type Outcome, type Step } from './step.ts'
import { planWebhookBlock, webhookUrl } from './webhook-block.ts'
import { planWorkPool, type WorkPoolOptions } from './work-pool.ts'

export interface SetupOptions extends WorkPoolOptions {
  /** pushpool's base URL, as Prefect reaches it. */
  url: string
  /** Defaults to `<pool>-pushpool`. */
  webhookBlock?: string
  webhookSecret: string
  /** Where the secret came from (an environment variable), named wherever the secret would appear. */
  webhookSecretSource: string
  dryRun: boolean
}

export interface SetupResult {
  kind: ObjectKind
  name: string
  outcome: Outcome
  changed: string[]
  note?: string
  /** The object as written (or as it would be, in a dry run), secret redacted. */
  shown: unknown
}

export interface SetupReport {
  apiUrl: string
  /** null when the server does not say. */
  prefectVersion: string | null
  dryRun: boolean
  pool: string
  url: string
  webhookUrl: string
  results: SetupResult[]
  /** A deployment in the pool to suggest for a test run, if there is one. */
  deployment: DeploymentRef | null
}

export type Progress = (line: string) => void

export function defaultWebhookBlockName (pool: string): string {
  return `${pool}-pushpool`
}

export async function runSetup (connection: PrefectConnection, options: SetupOptions, progress: Progress = () => {}): Promise<SetupReport> {
  const api = new SetupPrefectApi(connection)
  const blockName = options.webhookBlock ?? defaultWebhookBlockName(options.pool)
  const results: SetupResult[] = []
  const run = async <R>(step: Step<R>): Promise<R | undefined> => {
    const result = options.dryRun ? undefined : await step.apply()
    results.push({ kind: step.kind, name: step.name, outcome: step.outcome, changed: step.changed, note: step.note, shown: step.shown })
    return result
  }

  try {
    // The first request also proves the URL and the credentials before anything is planned.
    progress(`Connecting to Prefect at ${api.apiUrl}`)
    const prefectVersion = await api.serverVersion()

    progress(`Work pool "${options.pool}"`)
    await run(await planWorkPool(api, options))

    progress(`Webhook block "${blockName}"`)
    const block = await planWebhookBlock(api, {
      name: blockName, baseUrl: options.url, secret: options.webhookSecret, secretSource: options.webhookSecretSource
    })
    const blockId = await run(block) ?? block.existingId ?? `<id of the webhook block "${blockName}" once created>`

    progress(`Automations of work pool "${options.pool}"`)
    for (const step of await planAutomations(api, options.pool, blockId)) await run(step)

    const deployment = await api.someDeploymentIn(options.pool)
    return {
      apiUrl: api.apiUrl,
      prefectVersion,
      dryRun: options.dryRun,
      pool: options.pool,
      url: options.url,
      webhookUrl: webhookUrl(options.url),
      results,
      deployment
    }
  } catch (err) {
    throw explain(err, api.apiUrl, options.webhookSecret)
  }
}

/**
 * A Prefect failure as a SetupFailure saying what to check. Prefect's validation errors can quote
 * the request back, so the secret is scrubbed from every message.
 */
function explain (err: unknown, apiUrl: string, secret: string): unknown {
  const scrub = (message: string): string => message.replaceAll(secret, '<redacted>')
  if (err instanceof SetupFailure) return new SetupFailure(scrub(err.message), { cause: err })
  if (err instanceof PrefectUnavailable) {
    const hint = err.status === null
      ? `is the server running, and is PREFECT_API_URL (${apiUrl}) right?`
      : 'the server is failing or overloaded; try again, and check its logs if it persists'
    return new SetupFailure(`${scrub(err.message)}: ${hint}`, { cause: err })
  }
  if (err instanceof PrefectRequestError) return new SetupFailure(scrub(err.message), { cause: err })
  // PrefectClient's reads parse whatever answers; a web page means the URL is not the API's.
  if (err instanceof SyntaxError) {
    return new SetupFailure(`Prefect at ${apiUrl} answered something that is not JSON: ` +
      'is PREFECT_API_URL the API URL, usually ending in /api?', { cause: err })
  }
  return err
}
