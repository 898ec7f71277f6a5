#!/usr/bin/env node
// `pushpool [command]`: serve (the default) runs the service; emulator runs the loopback Cloud Run
// and Secret Manager emulator; setup creates the Prefect side; demo runs the whole push pool offline.
// Every command has --help. Errors go
// to stderr; exit codes: 0 ok, 1 failure, 2 usage, 78 configuration.
import { pathToFileURL } from 'node:url'

const USAGE = `Usage: pushpool [command] [options]

Commands:
  serve       Run the pushpool HTTP service (default). Configured by environment; see README.md.
  setup       Create or update the Prefect side: work pool, Webhook block, automations.
  emulator    Run the loopback Google Cloud emulator (Cloud Run, Secret Manager, Cloud Tasks, ...).
  demo        Run the whole push pool offline (Prefect, emulator, pushpool) and show five runs.

Options:
  -h, --help  Show this help; after a command, that command's help (pushpool setup --help)

Exit codes: 0 ok, 1 failure, 2 usage error, 78 configuration error.
`

const SERVE_HELP = `Usage: pushpool serve

Runs the pushpool HTTP service on $PORT (default 8080). It takes no options: it is configured by
environment variables (README.md lists them all), chiefly:
  PREFECT_API_URL, PREFECT_API_AUTH_STRING / PREFECT_API_KEY   the Prefect server
  PUSHPOOL_POOLS                                               the work pools served
  PUSHPOOL_WEBHOOK_SECRETS                                     secrets the webhook accepts (required)
  PUSHPOOL_ADMIN_TOKENS, PUSHPOOL_AUDIENCE, PUSHPOOL_ADMIN_PRINCIPALS   admin authentication
  PUSHPOOL_STORE_URL                                           sqlite:<path> or postgres://...
Stops on SIGTERM, within Cloud Run's 10 s.

Exit codes: 0 stopped, 1 failure, 78 configuration error (every bad variable is listed).
`

const EMULATOR_HELP = `Usage: pushpool emulator [options]

Runs the loopback Google Cloud emulator for development, demos and tests: Cloud Run Admin API v2
+ Operations + Secret Manager + Cloud Tasks over plaintext gRPC, and an HTTP side with the ID-token
certificates, Cloud Logging entries.list and IAM Credentials. Prints
{"endpoint":"host:port","httpUrl":"http://host:port","certsUrl":"…"} once listening; point pushpool
at it with PUSHPOOL_CLOUD_RUN_ENDPOINT, PUSHPOOL_SECRET_MANAGER_ENDPOINT (endpoint) and
PUSHPOOL_GOOGLE_CERTS_URL (certsUrl). Stops on SIGTERM.

Options:
  --host <host>                   address to listen on (default 127.0.0.1)
  --port <n>                      gRPC port (default 0: any free port)
  --http-port <n>                 HTTP port (default 0: any free port)
  --executions process|hold|succeed
                                  run each execution's command as a local process (default),
                                  hold it running, or succeed it at once
  --missing-image-pattern <re>    images matching this regular expression fail as not found
  --env KEY=VALUE                 extra environment for executions run as processes (repeatable)
  --execution-end-push-url <url>  push each ended execution's Cloud Run audit entry to this URL as a
                                  Pub/Sub push (off by default; env PUSHPOOL_EMULATOR_EXECUTION_END_PUSH_URL)
  --execution-end-push-audience <aud>
                                  the push's ID-token audience (default: the URL; env …_PUSH_AUDIENCE)
  --execution-end-push-service-account <email>
                                  the account the push's ID token is for (none: no token;
                                  env …_PUSH_SERVICE_ACCOUNT)
  -h, --help                      show this help

Exit codes: 0 stopped, 2 usage error.
`

const isHelp = (arg: string): boolean => arg === '--help' || arg === '-h'

export async function run (argv: string[]): Promise<void> {
  const [first, ...rest] = argv
  const command = first === undefined || first.startsWith('-') ? 'serve' : first
  const args = first === undefined || first.startsWith('-') ? argv : rest
  if (command === 'help') {
    await run(args[0] === undefined ? ['--help'] : [args[0], '--help'])
    return
  }
  // A bare `pushpool --help` is about pushpool, not about serve.
  if (args.some(isHelp) && (first === undefined || first.startsWith('-'))) {
    process.stdout.write(USAGE)
    return
  }
  switch (command) {
    case 'serve': {
      if (args.some(isHelp)) {
        process.stdout.write(SERVE_HELP)
        return
      }
      const { main } = await import('./server.ts')
      await main()
      return
    }
    case 'emulator': {
      if (args.some(isHelp)) {
        process.stdout.write(EMULATOR_HELP)
        return
      }
      const { main } = await import('./emulator/main.ts')
      await main(args)
      return
    }
    case 'setup': {
      const { setupCommand } = await import('./setup/cli.ts')
      // Help first, so `setup --bad --help` still shows help rather than a usage error.
      process.exitCode = await setupCommand(args.some(isHelp) ? ['--help'] : args)
      return
    }
    case 'demo': {
      const { demo, DEMO_HELP } = await import('./demo/demo.ts')
      if (args.some(isHelp)) {
        process.stdout.write(DEMO_HELP)
        return
      }
      const unknown = args.filter(arg => arg !== '--exit')
      if (unknown.length > 0) {
        process.stderr.write(`pushpool demo: unknown option ${unknown[0]}\n\n${DEMO_HELP}`)
        process.exitCode = 2
        return
      }
      process.exitCode = await demo(args)
      return
    }
    default:
      process.stderr.write(`pushpool: unknown command "${command}"\n\n${USAGE}`)
      process.exitCode = 2
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await run(process.argv.slice(2))
}
