// The Webhook block the automations call: pushpool's webhook URL, POST, and the two static headers
// Prefect's block can send. Prefect sends a string payload without a Content-Type, so the block
// must carry it; the bearer secret is the only proof of origin the block can give.
import { changedPaths } from './json-diff.ts'
import type { SetupPrefectApi } from './prefect-api.ts'
import type { Step } from './step.ts'

export const WEBHOOK_PATH = '/v1/webhooks/prefect'
const BLOCK_TYPE = 'webhook'

export interface WebhookBlockOptions {
  name: string
  /** pushpool's base URL, as Prefect reaches it. */
  baseUrl: string
  secret: string
  /** Where the secret came from, named in place of it wherever the block is printed. */
  secretSource: string
}

export interface WebhookBlockStep extends Step<string> {
  /** The block's id if it exists already; a dry run shows it in the automations. */
  existingId: string | null
}

export function webhookUrl (baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, '')}${WEBHOOK_PATH}`
}

export async function planWebhookBlock (api: SetupPrefectApi, options: WebhookBlockOptions): Promise<WebhookBlockStep> {
  // Read with secrets in clear: the URL and headers are secret fields, and they are what is compared.
  const existing = await api.readBlockDocument(BLOCK_TYPE, options.name, true)
  const data = blockData(options.baseUrl, `Bearer ${options.secret}`)
  const shown = { name: options.name, block_type: BLOCK_TYPE, data: blockData(options.baseUrl, `Bearer <the first secret in ${options.secretSource}>`) }
  if (existing === null) {
    return {
      kind: 'webhook block',
      name: options.name,
      outcome: 'create',
      changed: [],
      shown,
      existingId: null,
      apply: () => api.createBlockDocument(BLOCK_TYPE, options.name, data)
    }
  }
  const { url, method, headers } = existing.data
  const changed = changedPaths({ url, method, headers }, data).map(path => `data.${path}`)
  return {
    kind: 'webhook block',
    name: options.name,
    outcome: changed.length > 0 ? 'update' : 'unchanged',
    changed,
    shown,
    existingId: existing.id,
    apply: async () => {
      // The headers are replaced as a whole, so a rotated-out secret does not linger; fields setup
      // does not manage (verify, allow_private_urls) keep the values the user gave them.
      if (changed.length > 0) await api.replaceBlockData(existing.id, { ...existing.data, ...data })
      return existing.id
    }
  }
}

function blockData (baseUrl: string, authorization: string): Record<string, unknown> {
  return {
    url: webhookUrl(baseUrl),
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: authorization }
  }
}
