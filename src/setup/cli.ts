// `pushpool setup` on the command line: parse and check the options, read the environment, run
// setup, print the report. Results go to stdout; progress and errors go to stderr, so the report
// can be piped. Exit codes: 0 done, 1 setup failed (the message says what to fix), 2 usage, 78
// configuration (EX_CONFIG).
import { parseArgs } from 'node:util'
import { ConfigError } from '../config.ts'
import { SERVICE_ACCOUNT_EMAIL } from '../jobconfig/impersonation.ts'
import { DEFAULT_SECRET_VARIABLE, readSetupEnv, type SetupEnv } from './env.ts'
import { formatReport } from './report.ts'
import { defaultWebhookBlockName, runSetup, type SetupOptions } from './setup.ts'
import { SetupFailure } from './step.ts'
import type { SecretRef } from './work-pool.ts'

export const EXIT = { ok: 0, failure: 1, usage: 2, config: 78 } as const

export const SETUP_HELP = `Usage: pushpool setup --url <pushpool URL> [options]

Creates or updates, on the Prefect server at PREFECT_API_URL, everything Prefect needs to push
flow runs to pushpool. Running it again changes only what differs ("unchanged" otherwise).
  - the work pool: type cloud-run-v2 with prefect-gcp's default base job template
    (or, with --adopt, an existing Cloud Run pool left as it is);
  - the Webhook block "<pool>-pushpool": POST <url>/v1/webhooks/prefect with the headers
    "Content-Type: application/json" and "Authorization: Bearer <webhook secret>";
  - the automations "<pool>: dispatch" (Scheduled, Late and AwaitingRetry runs of the pool)
    and "<pool>: cancel" (Cancelling runs), which call the Webhook block.

Options:
  --url <url>                  pushpool's base URL as the Prefect server reaches it (required),
                               e.g. https://pushpool-abc123-uc.a.run.app
  --pool <name>                work pool name (default: pushpool)
  --adopt                      serve an existing cloud-run or cloud-run-v2 pool as it is: its type,
                               template and concurrency limit are not touched
  --region <region>            default Cloud Run region of the pool's jobs (default: us-central1)
  --image <image>              default container image of the pool's jobs
  --credentials-block <name>   GCP Credentials block that jobs use by default
  --concurrency-limit <n>      the pool's concurrency limit
  --service-account <email>    service account the pool's jobs run as by default
                               (service_account_name); the identity pushpool runs as needs
                               roles/iam.serviceAccountUser on it
  --impersonate-service-account <email>
                               service account pushpool launches the pool's runs as, keyless,
                               through the IAM Credentials API (impersonate_service_account):
                               pushpool's own account needs roles/iam.serviceAccountTokenCreator
                               on it, and it needs Cloud Run's roles (and Service Account User
                               on the jobs' account)
  --prefect-auth-string-secret <secret>[:<version>]
                               Secret Manager secret holding Prefect's auth string (user:password):
                               jobs read PREFECT_API_AUTH_STRING from it, never as a plain value
                               (prefect_api_auth_string_secret; version default: latest). The jobs'
                               service account needs roles/secretmanager.secretAccessor on it
  --prefect-api-key-secret <secret>[:<version>]
                               the same for a Prefect Cloud API key (prefect_api_key_secret)
                               (from --region to here, an option not given leaves an existing
                               pool's value as it is)
  --webhook-block <name>       Webhook block name (default: <pool>-pushpool)
  --webhook-secret-env <NAME>  variable holding the webhook secret (default: ${DEFAULT_SECRET_VARIABLE});
                               its first comma-separated value is used and never printed
  --dry-run                    print what would change and the objects (secret redacted); change nothing
  -h, --help                   show this help

Environment:
  PREFECT_API_URL              Prefect API URL (default: http://127.0.0.1:4200/api)
  PREFECT_API_AUTH_STRING      "user:password" of a self-hosted server with Basic auth, or
  PREFECT_API_KEY              a Prefect Cloud API key
  ${DEFAULT_SECRET_VARIABLE}     the secrets pushpool accepts on its webhook

Exit codes: 0 done, 1 Prefect refused or failed (the message says what to fix), 2 usage error,
78 configuration error.
`

class UsageError extends Error {}

/** Runs `pushpool setup <argv>` and resolves to the process exit code. */
export async function setupCommand (argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed: ParsedArgs
  try {
    parsed = parseSetupArgs(argv)
  } catch (err) {
    if (!(err instanceof UsageError) && !isParseArgsError(err)) throw err
    process.stderr.write(`pushpool setup: ${(err as Error).message}\n\nRun \`pushpool setup --help\` for the options.\n`)
    return EXIT.usage
  }
  if (parsed === 'help') {
    process.stdout.write(SETUP_HELP)
    return EXIT.ok
  }

  let setupEnv: SetupEnv
  try {
    setupEnv = readSetupEnv(env, parsed.secretVariable)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`pushpool setup: ${err.message}\n`)
    return EXIT.config
  }

  const options: SetupOptions = { ...parsed.options, webhookSecret: setupEnv.webhookSecret, webhookSecretSource: parsed.secretVariable }
  try {
    const report = await runSetup(setupEnv.prefect, options, line => { process.stderr.write(`... ${line}\n`) })
    process.stdout.write(formatReport(report))
    return EXIT.ok
  } catch (err) {
    if (!(err instanceof SetupFailure)) throw err
    process.stderr.write(`pushpool setup: ${err.message}\n`)
    return EXIT.failure
  }
}

type ParsedArgs = 'help' | { options: Omit<SetupOptions, 'webhookSecret' | 'webhookSecretSource'>, secretVariable: string }

function parseSetupArgs (argv: string[]): ParsedArgs {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      url: { type: 'string' },
      pool: { type: 'string', default: 'pushpool' },
      adopt: { type: 'boolean', default: false },
      region: { type: 'string' },
      image: { type: 'string' },
      'credentials-block': { type: 'string' },
      'concurrency-limit': { type: 'string' },
      'service-account': { type: 'string' },
      'impersonate-service-account': { type: 'string' },
      'prefect-auth-string-secret': { type: 'string' },
      'prefect-api-key-secret': { type: 'string' },
      'webhook-block': { type: 'string' },
      'webhook-secret-env': { type: 'string', default: DEFAULT_SECRET_VARIABLE },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return 'help'

  if (values.url === undefined) throw new UsageError('--url is required: pushpool\'s base URL as the Prefect server reaches it')
  const url = values.url.replace(/\/+$/, '')
  if (!isHttpUrl(url)) throw new UsageError('--url must be an http(s) URL without query or fragment, e.g. https://pushpool-abc123-uc.a.run.app')
  const pool = values.pool.trim()
  if (pool === '') throw new UsageError('--pool must not be empty')
  if (pool.toLowerCase().startsWith('prefect')) throw new UsageError('--pool: Prefect reserves work pool names that start with "prefect"')
  if (values.region !== undefined && !/^[a-z]+(-[a-z]+)+[0-9]+$/.test(values.region)) {
    throw new UsageError('--region must be a Cloud Run region, e.g. us-central1')
  }
  if (values.image !== undefined && !/^\S+$/.test(values.image)) throw new UsageError('--image must be an image reference without spaces')
  const limit = values['concurrency-limit']
  if (limit !== undefined && !/^[0-9]{1,6}$/.test(limit)) throw new UsageError('--concurrency-limit must be a whole number (0 or more)')
  const secretVariable = values['webhook-secret-env']
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(secretVariable)) throw new UsageError('--webhook-secret-env must be an environment variable name')
  const serviceAccount = values['service-account']
  if (serviceAccount !== undefined && !SERVICE_ACCOUNT_EMAIL.test(serviceAccount)) {
    throw new UsageError('--service-account must be a service account\'s email, e.g. pushpool-jobs@my-project.iam.gserviceaccount.com')
  }
  const impersonateServiceAccount = values['impersonate-service-account']
  if (impersonateServiceAccount !== undefined && !SERVICE_ACCOUNT_EMAIL.test(impersonateServiceAccount)) {
    throw new UsageError('--impersonate-service-account must be a service account\'s email, e.g. pushpool-launcher@my-project.iam.gserviceaccount.com')
  }
  const prefectAuthStringSecret = secretRef('--prefect-auth-string-secret', values['prefect-auth-string-secret'])
  const prefectApiKeySecret = secretRef('--prefect-api-key-secret', values['prefect-api-key-secret'])
  if (values.adopt) {
    const given = (['region', 'image', 'credentials-block', 'concurrency-limit', 'service-account', 'impersonate-service-account',
      'prefect-auth-string-secret', 'prefect-api-key-secret'] as const).filter(name => values[name] !== undefined)
    if (given.length > 0) {
      throw new UsageError(`--adopt leaves the pool as it is, so it cannot be combined with ${given.map(name => `--${name}`).join(', ')}`)
    }
  }

  return {
    secretVariable,
    options: {
      url,
      pool,
      adopt: values.adopt,
      region: values.region,
      image: values.image,
      credentialsBlock: values['credentials-block'],
      concurrencyLimit: limit === undefined ? undefined : Number(limit),
      serviceAccount,
      impersonateServiceAccount,
      prefectAuthStringSecret,
      prefectApiKeySecret,
      webhookBlock: values['webhook-block'] ?? defaultWebhookBlockName(pool),
      dryRun: values['dry-run']
    }
  }
}

// Secret Manager ids are letters, digits, - and _; a secret of another project is named in full.
const SECRET = /^(projects\/[a-z0-9-]+\/secrets\/)?[A-Za-z0-9_-]{1,255}$/
const VERSION = /^(latest|[1-9][0-9]*)$/

/** `<secret>[:<version>]` as the template's {secret, version}; the version defaults to latest. */
function secretRef (option: string, value: string | undefined): SecretRef | undefined {
  if (value === undefined) return undefined
  const [secret, version = 'latest', ...rest] = value.split(':')
  if (!SECRET.test(secret) || !VERSION.test(version) || rest.length > 0) {
    throw new UsageError(`${option} must be a Secret Manager secret, as <secret>[:<version>] (e.g. pushpool-prefect-auth-string, ` +
      'or projects/<project>/secrets/<secret>:3); the version is "latest" or a number')
  }
  return { secret, version }
}

function isHttpUrl (value: string): boolean {
  try {
    const url = new URL(value)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' && url.hash === '' && !/\s/.test(value)
  } catch {
    return false
  }
}

/** node:util parseArgs reports unknown options and missing values with these codes. */
function isParseArgsError (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')
}
