// Environment → typed, schema-validated configuration. Each variable is declared once, in
// VARIABLES: its name, the rule its raw string must meet (with its default), what a good value
// looks like, and how it becomes a typed field of Config. Every problem is reported at once, in
// one ConfigError that names each bad variable and what it should be, so a deploy fails on its
// first start with the whole list rather than one variable per attempt.

export type JobMode = 'reuse' | 'per-run'
export type TimerBackend = 'process' | 'cloud-tasks'

/** The rule a variable's raw string must meet: the JSON Schema keywords checkEnv knows. */
interface EnvRule { type: 'string', pattern?: string, enum?: readonly string[], minLength?: number, default?: string }

interface Variable<T> {
  env: string
  rule: EnvRule
  /** What a good value looks like; every message about the variable ends with it. */
  hint: string
  required?: true
  /** The raw string (its default applied) as the typed field; `env` is the whole environment. */
  parse: (raw: string | undefined, env: NodeJS.ProcessEnv) => T
  /** What the rule cannot express, as a problem to report, or null. */
  check?: (raw: string) => string | null
}

const variable = <T>(spec: Variable<T>): Variable<T> => spec

const list = (value: string | undefined): string[] =>
  (value ?? '').split(',').map(s => s.trim()).filter(s => s.length > 0)

const nullable = (value: string | undefined): string | null =>
  value === undefined || value.trim() === '' ? null : value.trim()

const withoutTrailingSlash = (value: string | undefined): string | null => nullable(value)?.replace(/\/+$/, '') ?? null

const number = (value: string | undefined): number => Number(value)

/** Each comma-separated entry of a secret list must be long enough to resist guessing. */
const secretsOfLength = (what: string) => (raw: string): string | null =>
  list(raw).some(s => s.length < 16) ? `each ${what} must be at least 16 characters` : null

const inRange = (min: number, max: number) => (raw: string): string | null => {
  const value = Number(raw)
  return value < min || value > max ? `must be from ${min} to ${max}` : null
}

const URL_RULE = '^https?://[^\\s]+$'
const OPTIONAL_URL_RULE = '^$|^https?://[^\\s]+$'
const HOST_PORT_RULE = '^$|^[^\\s:/]+:[0-9]{1,5}$'

export const VARIABLES = {
  port: variable({
    env: 'PORT', rule: { type: 'string', pattern: '^[0-9]{1,5}$', default: '8080' }, hint: 'a TCP port number up to 65535 (0: any free port)',
    parse: number, check: inRange(0, 65535)
  }),
  /** Cloud Run routes to 0.0.0.0; anywhere else stay on loopback unless told otherwise. */
  host: variable({
    env: 'HOST', rule: { type: 'string', minLength: 1 }, hint: 'a listen address, e.g. 127.0.0.1 or 0.0.0.0',
    parse: (raw, env) => raw ?? (env.K_SERVICE !== undefined ? '0.0.0.0' : '127.0.0.1')
  }),
  storeUrl: variable({
    env: 'PUSHPOOL_STORE_URL', rule: { type: 'string', pattern: '^(sqlite:.+|postgres(ql)?://.+)$', default: 'sqlite:./data/pushpool.db' },
    hint: '"sqlite:<path>" or "postgres://user:pass@host/db"', parse: raw => raw as string
  }),
  prefectApiUrl: variable({
    env: 'PREFECT_API_URL', rule: { type: 'string', pattern: URL_RULE, default: 'http://127.0.0.1:4200/api' },
    hint: 'the Prefect API URL, e.g. http://127.0.0.1:4200/api', parse: raw => withoutTrailingSlash(raw) as string
  }),
  prefectAuthString: variable({
    env: 'PREFECT_API_AUTH_STRING', rule: { type: 'string', pattern: '^$|^[^:]+:.*$' },
    hint: '"user:password", as in the server\'s PREFECT_SERVER_API_AUTH_STRING', parse: nullable
  }),
  prefectApiKey: variable({ env: 'PREFECT_API_KEY', rule: { type: 'string' }, hint: 'a Prefect Cloud API key', parse: nullable }),
  /** Prefect UI base URL, for links in the admin API. */
  prefectUiUrl: variable({
    env: 'PUSHPOOL_PREFECT_UI_URL', rule: { type: 'string', pattern: OPTIONAL_URL_RULE }, hint: 'the Prefect UI URL, e.g. http://127.0.0.1:4200',
    parse: withoutTrailingSlash
  }),
  pools: variable({
    env: 'PUSHPOOL_POOLS', rule: { type: 'string', pattern: '^\\s*[^,\\s][^,]*(,[^,]*)*$', default: 'pushpool' },
    hint: 'comma-separated work pool names', parse: list
  }),
  webhookSecrets: variable({
    env: 'PUSHPOOL_WEBHOOK_SECRETS', rule: { type: 'string', pattern: '\\S' }, required: true,
    hint: 'comma-separated bearer secrets that the Prefect Webhook block sends, each at least 16 characters',
    parse: list, check: secretsOfLength('secret')
  }),
  adminTokens: variable({
    env: 'PUSHPOOL_ADMIN_TOKENS', rule: { type: 'string' }, hint: 'comma-separated admin bearer tokens, each at least 16 characters',
    parse: list, check: secretsOfLength('token')
  }),
  adminPrincipals: variable({
    env: 'PUSHPOOL_ADMIN_PRINCIPALS', rule: { type: 'string' }, hint: 'comma-separated Google account emails allowed on admin routes', parse: list
  }),
  /** The audience Google ID tokens must carry (the service URL). */
  audience: variable({ env: 'PUSHPOOL_AUDIENCE', rule: { type: 'string' }, hint: 'the service URL Google ID tokens are minted for', parse: nullable }),
  schedulerPrincipal: variable({
    env: 'PUSHPOOL_SCHEDULER_PRINCIPAL', rule: { type: 'string' }, hint: 'the Cloud Scheduler service account email', parse: nullable
  }),
  jobMode: variable({
    env: 'PUSHPOOL_JOB_MODE', rule: { type: 'string', enum: ['reuse', 'per-run'], default: 'reuse' }, hint: '"reuse" or "per-run"',
    parse: raw => raw as JobMode
  }),
  gcpCredentialsSecret: variable({
    env: 'PUSHPOOL_GCP_CREDENTIALS_SECRET', rule: { type: 'string', pattern: '^$|^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$' },
    hint: 'a Secret Manager name: projects/<p>/secrets/<s>[/versions/<v>]', parse: nullable
  }),
  gcpProject: variable({ env: 'PUSHPOOL_GCP_PROJECT', rule: { type: 'string' }, hint: 'a GCP project id', parse: nullable }),
  jobPrefectApiUrl: variable({
    env: 'PUSHPOOL_JOB_PREFECT_API_URL', rule: { type: 'string', pattern: OPTIONAL_URL_RULE },
    hint: 'the Prefect API URL jobs use, e.g. https://prefect.example.com/api', parse: withoutTrailingSlash
  }),
  cloudRunEndpoint: variable({
    env: 'PUSHPOOL_CLOUD_RUN_ENDPOINT', rule: { type: 'string', pattern: HOST_PORT_RULE }, hint: 'host:port of a plaintext gRPC emulator',
    parse: nullable
  }),
  secretManagerEndpoint: variable({
    env: 'PUSHPOOL_SECRET_MANAGER_ENDPOINT', rule: { type: 'string', pattern: HOST_PORT_RULE }, hint: 'host:port of a plaintext gRPC emulator',
    parse: nullable
  }),
  /** Where pushpool asks IAM Credentials for an impersonated account's token (`impersonate_service_account`). */
  iamCredentialsEndpoint: variable({
    env: 'PUSHPOOL_IAM_CREDENTIALS_ENDPOINT', rule: { type: 'string', pattern: OPTIONAL_URL_RULE },
    hint: 'the base URL of an IAM Credentials emulator, e.g. http://127.0.0.1:8086', parse: withoutTrailingSlash
  }),
  /** Where a crashed execution's last log lines are read (entries.list); Google's Cloud Logging unless set. */
  loggingEndpoint: variable({
    env: 'PUSHPOOL_LOGGING_ENDPOINT', rule: { type: 'string', pattern: OPTIONAL_URL_RULE },
    hint: 'the base URL of a Cloud Logging emulator, e.g. http://127.0.0.1:8086', parse: withoutTrailingSlash
  }),
  /** Whether the worker's and pushpool's events are sent to Prefect (flow-run log lines always are). */
  prefectEvents: variable({
    env: 'PUSHPOOL_PREFECT_EVENTS', rule: { type: 'string', enum: ['on', 'off'], default: 'on' },
    hint: '"on" or "off"', parse: raw => raw === 'on'
  }),
  /** How many of a crashed execution's last log lines are written into the run's Prefect logs. */
  crashLogLines: variable({
    env: 'PUSHPOOL_CRASH_LOG_LINES', rule: { type: 'string', pattern: '^[0-9]{1,4}$', default: '50' },
    hint: 'a whole number from 0 (none) to 1000', parse: number, check: inRange(0, 1000)
  }),
  prefetchSeconds: variable({
    env: 'PUSHPOOL_PREFETCH_SECONDS', rule: { type: 'string', pattern: '^[0-9]{1,5}$', default: '10' },
    hint: 'whole seconds from 0 to 99999', parse: number
  }),
  /** What fires a run at its time: an in-process timer (one process) or Cloud Tasks (GCP, no instance alive between runs). */
  timers: variable({
    env: 'PUSHPOOL_TIMERS', rule: { type: 'string', enum: ['process', 'cloud-tasks'], default: 'process' },
    hint: '"process" (an in-process timer, re-armed from the ledger at start) or "cloud-tasks"', parse: raw => raw as TimerBackend
  }),
  /** How far ahead reconcile arms timers for runs that will become due; longer than its tick. */
  timerHorizonSeconds: variable({
    env: 'PUSHPOOL_TIMER_HORIZON_SECONDS', rule: { type: 'string', pattern: '^[0-9]{1,5}$', default: '600' },
    hint: 'whole seconds from 60 to 86400, longer than the reconcile interval', parse: number, check: inRange(60, 86400)
  }),
  tasksQueue: variable({
    env: 'PUSHPOOL_TASKS_QUEUE', rule: { type: 'string', pattern: '^$|^projects/[^/]+/locations/[^/]+/queues/[^/]+$' },
    hint: 'the Cloud Tasks queue: projects/<p>/locations/<l>/queues/<q>', parse: nullable
  }),
  /** The service account Cloud Tasks mints its OIDC token for; pushpool admits it on the timer route. */
  tasksInvoker: variable({
    env: 'PUSHPOOL_TASKS_INVOKER', rule: { type: 'string' }, hint: 'the service account email Cloud Tasks calls pushpool as', parse: nullable
  }),
  /** The service account a Pub/Sub push subscription of executions' ends sends as; admitted on that route. */
  executionEventsPrincipal: variable({
    env: 'PUSHPOOL_EXECUTION_EVENTS_PRINCIPAL', rule: { type: 'string' },
    hint: 'the service account email the execution-end push subscription sends as', parse: nullable
  }),
  tasksEndpoint: variable({
    env: 'PUSHPOOL_TASKS_ENDPOINT', rule: { type: 'string', pattern: HOST_PORT_RULE }, hint: 'host:port of a plaintext gRPC emulator',
    parse: nullable
  }),
  retentionDays: variable({
    env: 'PUSHPOOL_RETENTION_DAYS', rule: { type: 'string', pattern: '^[1-9][0-9]{0,4}$', default: '30' },
    hint: 'whole days from 1 to 99999', parse: number
  }),
  /** Drives in flight at once in one process; more due runs wait their turn (recorded, and timed). */
  maxInFlight: variable({
    env: 'PUSHPOOL_MAX_IN_FLIGHT', rule: { type: 'string', pattern: '^[1-9][0-9]{0,3}$', default: '64' },
    hint: 'a whole number from 1 to 9999; match Cloud Run\'s --concurrency', parse: number
  }),
  launchAttempts: variable({
    env: 'PUSHPOOL_LAUNCH_ATTEMPTS', rule: { type: 'string', pattern: '^([1-9]|10)$', default: '3' }, hint: 'a whole number from 1 to 10',
    parse: number
  }),
  webhookDeadlineMs: variable({
    env: 'PUSHPOOL_WEBHOOK_DEADLINE_MS', rule: { type: 'string', pattern: '^[0-9]{3,5}$', default: '8000' },
    hint: 'milliseconds, from 100 to 99999; keep it below Prefect\'s 10 s webhook timeout', parse: number
  }),
  workerName: variable({
    env: 'PUSHPOOL_WORKER_NAME', rule: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$', default: 'pushpool' },
    hint: 'letters, digits, "_", "." or "-", starting with a letter or digit, at most 63 characters', parse: raw => raw as string
  }),
  logLevel: variable({
    env: 'LOG_LEVEL', rule: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    hint: 'one of fatal, error, warn, info, debug, trace, silent', parse: raw => raw as string
  }),
  /** Where Google's ID-token signing certificates are fetched (overridable for offline tests). */
  googleCertsUrl: variable({
    env: 'PUSHPOOL_GOOGLE_CERTS_URL', rule: { type: 'string', pattern: URL_RULE, default: 'https://www.googleapis.com/oauth2/v1/certs' },
    hint: 'an http(s) URL serving Google\'s ID-token certificates', parse: raw => raw as string
  }),
  /** How long a started run may stay Cancelling before pushpool cancels its execution. */
  cancelGraceSeconds: variable({
    env: 'PUSHPOOL_CANCEL_GRACE_SECONDS', rule: { type: 'string', pattern: '^[0-9]{1,5}$', default: '60' },
    hint: 'whole seconds from 0 to 99999', parse: number
  }),
  /** How long a launch whose retries were used up waits before reconcile tries again. */
  retryDelaySeconds: variable({
    env: 'PUSHPOOL_RETRY_DELAY_SECONDS', rule: { type: 'string', pattern: '^[0-9]{1,5}$', default: '30' },
    hint: 'whole seconds from 0 to 99999', parse: number
  }),
  /** Wall-clock budget of one reconcile pass. */
  reconcileBudgetMs: variable({
    env: 'PUSHPOOL_RECONCILE_BUDGET_MS', rule: { type: 'string', pattern: '^[0-9]{3,6}$', default: '25000' },
    hint: 'milliseconds from 100 to 999999', parse: number
  })
}

type Variables = typeof VARIABLES
export type Config = { [K in keyof Variables]: Variables[K] extends Variable<infer T> ? T : never }

const DECLARED = Object.values(VARIABLES) as Array<Variable<unknown>>

// The rules as one JSON Schema object over the raw strings, for documentation and for the test
// that holds checkEnv to what Ajv reports.
export const envSchema = {
  type: 'object',
  properties: Object.fromEntries(DECLARED.map(v => [v.env, v.rule])) as Record<string, EnvRule>,
  required: DECLARED.filter(v => v.required === true).map(v => v.env)
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
  /** Ajv's wording of the same error. */
  message: string
}

// envSchema is checked here rather than by a JSON Schema validator: it needs only `required` and,
// per string, `pattern`, `enum`, `minLength` and `default`, and compiling it with Ajv cost every
// cold start ~40 ms for one object. test/config.test.ts checks that envSchema is valid JSON Schema
// and that this check reports exactly what Ajv reports, in the same order.
const CHECKED_KEYWORDS = new Set(['type', 'pattern', 'enum', 'minLength', 'default'])
const rules = DECLARED.map(({ env: name, rule }) => {
  // A keyword this check does not know would be silently ignored: refuse to start instead.
  const unknown = Object.keys(rule).filter(keyword => !CHECKED_KEYWORDS.has(keyword))
  if (rule.type !== 'string' || unknown.length > 0) throw new Error(`${name}: checkEnv supports string rules with ${[...CHECKED_KEYWORDS].join(', ')} only`)
  return { name, rule, pattern: rule.pattern === undefined ? null : new RegExp(rule.pattern, 'u') }
})

/** Fills in defaults, then lists what is wrong with `raw`: missing variables first, then each bad one in schema order. */
export function checkEnv (raw: Record<string, string>): EnvError[] {
  const errors: EnvError[] = []
  for (const name of envSchema.required) {
    if (raw[name] === undefined && envSchema.properties[name].default === undefined) {
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
  // Only the variables declared are copied, so the process env is never mutated and unrelated
  // variables never reach an error message.
  const raw: Record<string, string> = {}
  for (const { env: name } of DECLARED) {
    const value = env[name]
    if (value !== undefined && value !== '') raw[name] = value
  }
  const hintOf = new Map(DECLARED.map(v => [v.env, v.hint]))
  // The value itself is never echoed: it may be a secret.
  const problems = checkEnv(raw).map(err => err.keyword === 'required'
    ? `${err.name} is required: ${hintOf.get(err.name)}`
    : `${err.name} is invalid: expected ${hintOf.get(err.name)}`)
  const invalid = new Set(problems.map(p => p.split(' ')[0]))
  for (const { env: name, check, hint } of DECLARED) {
    const value = raw[name]
    if (check === undefined || value === undefined || invalid.has(name)) continue
    const problem = check(value)
    if (problem !== null) problems.push(`${name} is invalid: ${problem} (expected ${hint})`)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  const config = Object.fromEntries(Object.entries(VARIABLES).map(([key, spec]: [string, Variable<unknown>]) =>
    [key, spec.parse(raw[spec.env], env)])) as Config
  const together = combinationProblems(config)
  if (together.length > 0) throw new ConfigError(together)
  return config
}

/** What no single variable's rule can say: settings that need each other. */
function combinationProblems (config: Config): string[] {
  if (config.timers !== 'cloud-tasks') return []
  const missing = [
    config.tasksQueue === null ? 'PUSHPOOL_TASKS_QUEUE (the queue)' : null,
    config.tasksInvoker === null ? 'PUSHPOOL_TASKS_INVOKER (the service account Cloud Tasks calls as)' : null,
    config.audience === null ? 'PUSHPOOL_AUDIENCE (pushpool\'s URL, which Cloud Tasks calls and mints its token for)' : null
  ].filter(m => m !== null)
  return missing.length === 0 ? [] : [`PUSHPOOL_TIMERS=cloud-tasks needs ${missing.join(', ')}`]
}
