#!/usr/bin/env node
// `pushpool [command]`: serve (the default) runs the service; emulator runs the loopback Cloud Run
// and Secret Manager emulator. Errors go to stderr; exit codes: 0 ok, 2 usage, 78 configuration.
import { pathToFileURL } from 'node:url'

const USAGE = `Usage: pushpool [command] [options]

Commands:
  serve       Run the pushpool HTTP service (default). Configured by environment; see README.md.
  emulator    Run the loopback Cloud Run Admin API v2 + Secret Manager emulator (gRPC).
              Options: --port <n> (default 0), --executions process|hold|succeed (default process)

Options:
  -h, --help  Show this help (also after a command: pushpool serve --help)
`

export async function run (argv: string[]): Promise<void> {
  const [first, ...rest] = argv
  const command = first === undefined || first.startsWith('-') ? 'serve' : first
  const args = first === undefined || first.startsWith('-') ? argv : rest
  if (args.includes('--help') || args.includes('-h') || command === 'help') {
    process.stdout.write(USAGE)
    return
  }
  switch (command) {
    case 'serve': {
      const { main } = await import('./server.ts')
      await main()
      return
    }
    case 'emulator': {
      const { main } = await import('./emulator/main.ts')
      await main(args)
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
