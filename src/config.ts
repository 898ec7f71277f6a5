// Environment → typed, schema-validated configuration. Every problem is reported at once, in one
// ConfigError that names each bad variable and what it should be, so a deploy fails on its first
// start with the whole list rather than one variable per attempt.

export type JobMode = 'reuse' | 'per-run'

export interface Config {
  port: number
  host: string
  storeUrl: string
  prefectApiUrl: string
  prefectAuthString: string | null
  prefectApiKey: string | null
  prefectUiUrl: string | null
  pools: string[]
  webhookSecrets: string[]
  adminTokens: string[]
  adminPrincipals: string[]
  audience: string | null
  schedulerPrincipal: string | null
  jobMode: JobMode
  gcpCredentialsSecret: string | null
  gcpProject: string | null
  jobPrefectApiUrl: string | null
  cloudRunEndpoint: string | null
  secretManagerEndpoint: string | null
  prefetchSeconds: number
  retentionDays: number
  launchAttempts: number
  webhookDeadlineMs: number
  workerName: string
  logLevel: string
  /** Where Google's ID-token signing certificates are fetched (overridable for offline tests). */
  googleCertsUrl: string
  /** How long a started run may stay Cancelling before pushpool cancels its execution. */
  cancelGraceSeconds: number
  /** Wall-clock budget of one reconcile pass. */
  reconcileBudgetMs: number
  /** How long a launch whose retries were used up waits before reconcile tries again. */
  retryDelaySeconds: number
}

const list = (value: string | undefined): string[] =>
  (value ?? '').split(',').map(s => s.trim()).filter(s => s.length > 0)

const nullable = (value: string | undefined): string | null =>
  value === undefined || value.trim() === '' ? null : value.trim()

// Schema over the raw strings: what each variable must look like. Defaults live here too, so the
// README's table and this schema say the same thing.
export const envSchema = {
  type: 'object',
  properties: {
    PORT: { type: 'string', pattern: '^[0-9]{1,5}$', default: '8080' },
    HOST: { type: 'string', minLength: 1 },
    PUSHPOOL_STORE_URL: { type: 'string', pattern: '^(sqlite:.+|postgres(ql)?://.+)$', default: 'sqlite:./data/pushpool.db' },
    PREFECT_API_URL: { type: 'string', pattern: '^https?://[^\\s]+$', default: 'http://127.0.0.1:4200/api' },
    PREFECT_API_AUTH_STRING: { type: 'string', pattern: '^$|^[^:]+:.*$' },
    PREFECT_API_KEY: { type: 'string' },
    PUSHPOOL_PREFECT_UI_URL: { type: 'string', pattern: '^$|^https?://[^\\s]+$' },
    PUSHPOOL_POOLS: { type: 'string', pattern: '^\\s*[^,\\s][^,]*(,[^,]*)*$', default: 'pushpool' },
    PUSHPOOL_WEBHOOK_SECRETS: { type: 'string', pattern: '\\S' },
    PUSHPOOL_ADMIN_TOKENS: { type: 'string' },
    PUSHPOOL_ADMIN_PRINCIPALS: { type: 'string' },
    PUSHPOOL_AUDIENCE: { type: 'string' },
    PUSHPOOL_SCHEDULER_PRINCIPAL: { type: 'string' },
    PUSHPOOL_JOB_MODE: { type: 'string', enum: ['reuse', 'per-run'], default: 'reuse' },
    PUSHPOOL_GCP_CREDENTIALS_SECRET: { type: 'string', pattern: '^$|^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$' },
    PUSHPOOL_GCP_PROJECT: { type: 'string' },
    PUSHPOOL_JOB_PREFECT_API_URL: { type: 'string', pattern: '^$|^https?://[^\\s]+$' },
    PUSHPOOL_CLOUD_RUN_ENDPOINT: { type: 'string', pattern: '^$|^[^\\s:/]+:[0-9]{1,5}$' },
    PUSHPOOL_SECRET_MANAGER_ENDPOINT: { type: 'string', pattern: '^$|^[^\\s:/]+:[0-9]{1,5}$' },
    PUSHPOOL_PREFETCH_SECONDS: { type: 'string', pattern: '^[0-9]{1,5}$', default: '10' },
    PUSHPOOL_RETENTION_DAYS: { type: 'string', pattern: '^[1-9][0-9]{0,4}$', default: '30' },
    PUSHPOOL_LAUNCH_ATTEMPTS: { type: 'string', pattern: '^([1-9]|10)$', default: '3' },
    PUSHPOOL_WEBHOOK_DEADLINE_MS: { type: 'string', pattern: '^[0-9]{3,5}$', default: '8000' },
    PUSHPOOL_WORKER_NAME: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$', default: 'pushpool' },
    PUSHPOOL_GOOGLE_CERTS_URL: { type: 'string', pattern: '^https?://[^\\s]+$', default: 'https://www.googleapis.com/oauth2/v1/certs' },
    PUSHPOOL_CANCEL_GRACE_SECONDS: { type: 'string', pattern: '^[0-9]{1,5}$', default: '60' },
    PUSHPOOL_RETRY_DELAY_SECONDS: { type: 'string', pattern: '^[0-9]{1,5}$', default: '30' },
    PUSHPOOL_RECONCILE_BUDGET_MS: { type: 'string', pattern: '^[0-9]{3,6}$', default: '25000' },
    LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' }
  },
  required: ['PUSHPOOL_WEBHOOK_SECRETS']
} as const

const hints: Record<string, string> = {
  PORT: 'a TCP port number',
  PUSHPOOL_STORE_URL: '"sqlite:<path>" or "postgres://user:pass@host/db"',
  PREFECT_API_URL: 'the Prefect API URL, e.g. http://127.0.0.1:4200/api',
  PREFECT_API_AUTH_STRING: '"user:password", as in the server\'s PREFECT_SERVER_API_AUTH_STRING',
  PUSHPOOL_POOLS: 'comma-separated work pool names',
  PUSHPOOL_WEBHOOK_SECRETS: 'comma-separated bearer secrets that the Prefect Webhook block sends',
  PUSHPOOL_JOB_MODE: '"reuse" or "per-run"',
  PUSHPOOL_GCP_CREDENTIALS_SECRET: 'a Secret Manager name: projects/<p>/secrets/<s>[/versions/<v>]',
  PUSHPOOL_CLOUD_RUN_ENDPOINT: 'host:port of a plaintext gRPC emulator',
  PUSHPOOL_SECRET_MANAGER_ENDPOINT: 'host:port of a plaintext gRPC emulator',
  PUSHPOOL_LAUNCH_ATTEMPTS: 'a whole number from 1 to 10',
  PUSHPOOL_WEBHOOK_DEADLINE_MS: 'milliseconds, below Prefect\'s 10 s webhook timeout',
  LOG_LEVEL: 'one of fatal, error, warn, info, debug, trace, silent'
}

export class ConfigError extends Error {
  readonly problems: string[]
  constructor (problems: string[]) {
    super(`Invalid configuration:\n${problems.map(p => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

type EnvKeyword = 'required' | 'pattern' | 'enum' | 'minLength'

export interface EnvError {
  name: string
  keyword: EnvKeyword
  /** Ajv's wording, for a variable without a hint. */
  message: string
}

interface EnvRule { type: 'string', pattern?: string, enum?: readonly string[], minLength?: number, default?: string }

// envSchema is checked here rather than by a JSON Schema validator: it needs only `required` and,
// per string, `pattern`, `enum`, `minLength` and `default`, and compiling it with Ajv cost every
// cold start ~40 ms for one object. test/config.test.ts checks that envSchema is valid JSON Schema
// and that this check reports exactly what Ajv reports, in the same order.
const CHECKED_KEYWORDS = new Set(['type', 'pattern', 'enum', 'minLength', 'default'])
const rules = Object.entries(envSchema.properties as Record<string, EnvRule>).map(([name, rule]) => {
  // A keyword this check does not know would be silently ignored: refuse to start instead.
  const unknown = Object.keys(rule).filter(keyword => !CHECKED_KEYWORDS.has(keyword))
  if (rule.type !== 'string' || unknown.length > 0) throw new Error(`envSchema.${name}: checkEnv supports string rules with ${[...CHECKED_KEYWORDS].join(', ')} only`)
  return { name, rule, pattern: rule.pattern === undefined ? null : new RegExp(rule.pattern, 'u') }
})

/** Fills in defaults, then lists what is wrong with `raw`: missing variables first, then each bad one in schema order. */
export function checkEnv (raw: Record<string, string>): EnvError[] {
  const errors: EnvError[] = []
  for (const name of envSchema.required) {
    if (raw[name] === undefined && (envSchema.properties[name] as EnvRule).default === undefined) {
      errors.push({ name, keyword: 'required', message: `must have required property '${name}'` })
    }
  }
  for (const { name, rule, pattern } of rules) {
    if (raw[name] === undefined && rule.default !== undefined) raw[name] = rule.default
    const value = raw[name]
    if (value === undefined) continue
    if (rule.minLength !== undefined && [...value].length < rule.minLength) {
      errors.push({ name, keyword: 'minLength', message: `must NOT have fewer than ${rule.minLength} characters` })
    }
    if (pattern !== null && !pattern.test(value)) {
      errors.push({ name, keyword: 'pattern', message: `must match pattern "${rule.pattern}"` })
    }
    if (rule.enum !== undefined && !rule.enum.includes(value)) {
      errors.push({ name, keyword: 'enum', message: 'must be equal to one of the allowed values' })
    }
  }
  return errors
}

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  // Only the variables the schema knows are copied, so the process env is never mutated and
  // unrelated variables never reach an error message.
  const raw: Record<string, string> = {}
  for (const key of Object.keys(envSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  const problems: string[] = []
  for (const err of checkEnv(raw)) {
    const hint = hints[err.name]
    // The value itself is never echoed: it may be a secret.
    problems.push(err.keyword === 'required'
      ? `${err.name} is required${hint !== undefined ? `: ${hint}` : ''}`
      : `${err.name} is invalid${hint !== undefined ? `: expected ${hint}` : ` (${err.message})`}`)
  }
  const webhookSecrets = list(raw.PUSHPOOL_WEBHOOK_SECRETS)
  if (webhookSecrets.some(s => s.length < 16)) {
    problems.push('PUSHPOOL_WEBHOOK_SECRETS is invalid: each secret must be at least 16 characters')
  }
  const adminTokens = list(raw.PUSHPOOL_ADMIN_TOKENS)
  if (adminTokens.some(s => s.length < 16)) {
    problems.push('PUSHPOOL_ADMIN_TOKENS is invalid: each token must be at least 16 characters')
  }
  if (problems.length > 0) throw new ConfigError(problems)

  return {
    port: Number(raw.PORT),
    // Cloud Run routes to 0.0.0.0; anywhere else stay on loopback unless told otherwise.
    host: raw.HOST ?? (env.K_SERVICE !== undefined ? '0.0.0.0' : '127.0.0.1'),
    storeUrl: raw.PUSHPOOL_STORE_URL,
    prefectApiUrl: raw.PREFECT_API_URL.replace(/\/+$/, ''),
    prefectAuthString: nullable(raw.PREFECT_API_AUTH_STRING),
    prefectApiKey: nullable(raw.PREFECT_API_KEY),
    prefectUiUrl: nullable(raw.PUSHPOOL_PREFECT_UI_URL)?.replace(/\/+$/, '') ?? null,
    pools: list(raw.PUSHPOOL_POOLS),
    webhookSecrets,
    adminTokens,
    adminPrincipals: list(raw.PUSHPOOL_ADMIN_PRINCIPALS),
    audience: nullable(raw.PUSHPOOL_AUDIENCE),
    schedulerPrincipal: nullable(raw.PUSHPOOL_SCHEDULER_PRINCIPAL),
    jobMode: raw.PUSHPOOL_JOB_MODE as JobMode,
    gcpCredentialsSecret: nullable(raw.PUSHPOOL_GCP_CREDENTIALS_SECRET),
    gcpProject: nullable(raw.PUSHPOOL_GCP_PROJECT),
    jobPrefectApiUrl: nullable(raw.PUSHPOOL_JOB_PREFECT_API_URL)?.replace(/\/+$/, '') ?? null,
    cloudRunEndpoint: nullable(raw.PUSHPOOL_CLOUD_RUN_ENDPOINT),
    secretManagerEndpoint: nullable(raw.PUSHPOOL_SECRET_MANAGER_ENDPOINT),
    prefetchSeconds: Number(raw.PUSHPOOL_PREFETCH_SECONDS),
    retentionDays: Number(raw.PUSHPOOL_RETENTION_DAYS),
    launchAttempts: Number(raw.PUSHPOOL_LAUNCH_ATTEMPTS),
    webhookDeadlineMs: Number(raw.PUSHPOOL_WEBHOOK_DEADLINE_MS),
    workerName: raw.PUSHPOOL_WORKER_NAME,
    logLevel: raw.LOG_LEVEL,
    googleCertsUrl: raw.PUSHPOOL_GOOGLE_CERTS_URL,
    cancelGraceSeconds: Number(raw.PUSHPOOL_CANCEL_GRACE_SECONDS),
    reconcileBudgetMs: Number(raw.PUSHPOOL_RECONCILE_BUDGET_MS),
    retryDelaySeconds: Number(raw.PUSHPOOL_RETRY_DELAY_SECONDS)
  }
}
