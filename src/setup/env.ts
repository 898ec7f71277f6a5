// The environment `pushpool setup` reads: where Prefect is, how to authenticate to it, and the
// webhook secret to put in the block. Only these, not the service's whole configuration, so setup
// runs from a laptop or CI without a store URL or pool list. Problems are reported together, as
// ConfigError does for the service, and a value is never echoed: it may be a secret.
import { ConfigError } from '../config.ts'
import type { PrefectConnection } from './prefect-api.ts'

export const DEFAULT_SECRET_VARIABLE = 'PUSHPOOL_WEBHOOK_SECRETS'
const DEFAULT_PREFECT_API_URL = 'http://127.0.0.1:4200/api'
/** The service refuses shorter webhook secrets, so a block carrying one would never be accepted. */
const MIN_SECRET_LENGTH = 16

export interface SetupEnv {
  prefect: PrefectConnection
  webhookSecret: string
}

export function readSetupEnv (env: NodeJS.ProcessEnv, secretVariable = DEFAULT_SECRET_VARIABLE): SetupEnv {
  const problems: string[] = []
  const value = (name: string): string | null => {
    const raw = env[name]?.trim()
    return raw === undefined || raw === '' ? null : raw
  }

  const apiUrl = value('PREFECT_API_URL') ?? DEFAULT_PREFECT_API_URL
  if (!/^https?:\/\/\S+$/.test(apiUrl)) problems.push('PREFECT_API_URL is invalid: expected the Prefect API URL, e.g. http://127.0.0.1:4200/api')
  const authString = value('PREFECT_API_AUTH_STRING')
  if (authString !== null && !authString.includes(':')) {
    problems.push('PREFECT_API_AUTH_STRING is invalid: expected "user:password", as in the server\'s PREFECT_SERVER_API_AUTH_STRING')
  }

  // The first secret is the current one: while rotating, the service accepts the old ones too.
  const webhookSecret = (value(secretVariable) ?? '').split(',').map(s => s.trim()).find(s => s !== '') ?? null
  if (webhookSecret === null) {
    problems.push(`${secretVariable} is required: the bearer secret pushpool accepts on its webhook (its first comma-separated value is used)`)
  } else if (webhookSecret.length < MIN_SECRET_LENGTH) {
    problems.push(`${secretVariable} is invalid: the secret must be at least ${MIN_SECRET_LENGTH} characters`)
  }

  if (problems.length > 0 || webhookSecret === null) throw new ConfigError(problems)
  return { prefect: { apiUrl, authString, apiKey: value('PREFECT_API_KEY') }, webhookSecret }
}
