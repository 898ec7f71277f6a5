// Standalone emulator: `node src/emulator/main.ts [--host h] [--port n] [--http-port n]
// [--executions process|hold|succeed] [--missing-image-pattern re] [--env KEY=VALUE]...
// [--execution-end-push-url u [--execution-end-push-audience a] [--execution-end-push-service-account e]]`
// (the push flags also come from PUSHPOOL_EMULATOR_EXECUTION_END_PUSH_URL, _AUDIENCE and _SERVICE_ACCOUNT).
// Prints one JSON line {"endpoint":"host:port","httpUrl":"http://host:port","certsUrl":"…"} on stdout once
// listening, so a parent process can read where to connect; stops on SIGTERM/SIGINT.
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { startEmulator, type EmulatorOptions } from './server.ts'

const MODES = ['process', 'hold', 'succeed'] as const

export async function main (argv: string[]): Promise<void> {
  let options: EmulatorOptions
  try {
    options = parseOptions(argv, process.env)
  } catch (error) {
    process.stderr.write(`pushpool emulator: ${(error as Error).message}\n`)
    process.exitCode = 2
    return
  }
  const emulator = await startEmulator(options)
  const { endpoint, httpUrl, certsUrl } = emulator
  process.stdout.write(`${JSON.stringify({ endpoint, httpUrl, certsUrl })}\n`)
  await new Promise<void>(resolve => {
    const stop = (): void => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      resolve()
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
  await emulator.close()
}

const PUSH_ENV = {
  url: 'PUSHPOOL_EMULATOR_EXECUTION_END_PUSH_URL',
  audience: 'PUSHPOOL_EMULATOR_EXECUTION_END_PUSH_AUDIENCE',
  serviceAccount: 'PUSHPOOL_EMULATOR_EXECUTION_END_PUSH_SERVICE_ACCOUNT'
} as const

function parseOptions (argv: string[], env: NodeJS.ProcessEnv): EmulatorOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'http-port': { type: 'string', default: '0' },
      executions: { type: 'string', default: 'process' },
      'missing-image-pattern': { type: 'string' },
      env: { type: 'string', multiple: true, default: [] },
      'execution-end-push-url': { type: 'string' },
      'execution-end-push-audience': { type: 'string' },
      'execution-end-push-service-account': { type: 'string' }
    }
  })
  const port = portNumber('--port', values.port)
  const httpPort = portNumber('--http-port', values['http-port'])
  const mode = MODES.find(m => m === values.executions)
  if (!mode) throw new Error(`--executions must be one of ${MODES.join(', ')}, got '${values.executions}'`)
  const processEnv: Record<string, string> = {}
  for (const pair of values.env) {
    const at = pair.indexOf('=')
    if (at <= 0) throw new Error(`--env expects KEY=VALUE, got '${pair}'`)
    processEnv[pair.slice(0, at)] = pair.slice(at + 1)
  }
  const pattern = values['missing-image-pattern']
  const executionEndPush = pushOptions(
    values['execution-end-push-url'] ?? env[PUSH_ENV.url],
    values['execution-end-push-audience'] ?? env[PUSH_ENV.audience],
    values['execution-end-push-service-account'] ?? env[PUSH_ENV.serviceAccount])
  return {
    host: values.host,
    port,
    httpPort,
    executions: mode,
    processEnv,
    ...(pattern ? { missingImagePattern: new RegExp(pattern) } : {}),
    ...(executionEndPush ? { executionEndPush } : {}),
    logger: { info: (...args) => console.error(...args), warn: (...args) => console.error(...args) }
  }
}

function pushOptions (url: string | undefined, audience: string | undefined, serviceAccount: string | undefined): EmulatorOptions['executionEndPush'] {
  if (!url) {
    if (audience || serviceAccount) throw new Error(`--execution-end-push-audience and --execution-end-push-service-account need --execution-end-push-url (or ${PUSH_ENV.url})`)
    return undefined
  }
  if (!/^https?:\/\//.test(url) || !URL.canParse(url)) throw new Error(`--execution-end-push-url must be an http:// or https:// URL, got '${url}'`)
  if (serviceAccount !== undefined && !/^[^@\s]+@[^@\s]+$/.test(serviceAccount)) {
    throw new Error(`--execution-end-push-service-account must be a service account email, got '${serviceAccount}'`)
  }
  return { url, ...(audience ? { audience } : {}), ...(serviceAccount ? { serviceAccountEmail: serviceAccount } : {}) }
}

function portNumber (flag: string, text: string): number {
  const port = Number(text)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${flag} must be a port number, got '${text}'`)
  return port
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(process.argv.slice(2))
}
