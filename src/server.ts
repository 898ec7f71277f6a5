// Process entry: configuration, the app, listening on $PORT, and a shutdown that fits inside Cloud
// Run's 10 s between SIGTERM and SIGKILL.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import pino from 'pino'
import app from './app.ts'
import { loadConfig, ConfigError, type Config } from './config.ts'
import { loggerOptions } from './logger.ts'
import { clientErrorHandler } from './plugins/errors.ts'
import { OneLinePerRequest } from './request-log.ts'
import { precompiledSchemaController } from './precompiled-schemas.ts'
import { warmUpCloudRunClients } from './gcp/clients.ts'
import type { CodeCacheState } from './artifact/script.ts'

/** Hard stop after SIGTERM: below Cloud Run's 10 s, whatever is still in flight. */
const SHUTDOWN_DEADLINE_MS = 9000

export interface ServerOptions {
  /** Where log lines go; stdout by default. Tests collect them to check what is logged. */
  logStream?: { write(line: string): void }
  /**
   * Check every schema against JSON Schema's meta-schema as it is compiled. Tests turn it on; the
   * service skips it, since it compiles the meta-schema itself first, which costs a cold start
   * ~40 ms to re-check schemas that do not change between starts.
   */
  validateSchemas?: boolean
  /** How route schemas are compiled; scripts/precompile-schemas.ts captures the code with it. */
  schemaController?: FastifyServerOptions['schemaController']
}

export async function buildServer (config: Config, options: ServerOptions = {}): Promise<FastifyInstance> {
  const fastify = Fastify({
    logger: { ...loggerOptions(config.logLevel), ...(options.logStream !== undefined ? { stream: options.logStream } : {}) },
    genReqId: () => randomUUID(),
    logController: new OneLinePerRequest(),
    trustProxy: true,
    // A slow or stalled client cannot hold a connection open: headers within 5 s, the whole
    // request within 10 s, checked every second (Node's default sweep is every 30 s). There is no
    // socket inactivity timeout, which would cut a long reconcile pass's reply.
    connectionTimeout: 0,
    requestTimeout: 10_000,
    keepAliveTimeout: 10_000,
    http: { headersTimeout: 5_000, connectionsCheckingInterval: 1_000 },
    // Requests arriving while shutting down get our own 503 (plugins/shutdown.ts), with a code.
    return503OnClosing: false,
    // What Node refuses before routing (408, 431, 400) answers in the error schema too.
    clientErrorHandler,
    frameworkErrors: (error, _request, reply) => {
      // Errors before routing (a malformed URL, say) answer in the error schema too.
      void (reply as FastifyReply).code(400).send({ code: 'BAD_REQUEST', message: `The request is malformed: ${error.message}` })
    },
    routerOptions: { maxParamLength: 200 },
    schemaController: options.schemaController ?? precompiledSchemaController(),
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false, validateSchema: options.validateSchemas ?? false } }
  })
  // fp() so the app's error handler and decorators apply to the root instance.
  await fastify.register(fp(app), { config })
  return fastify
}

/** Exit codes of a start that cannot complete. */
const EXIT_FAILURE = 1
const EXIT_CONFIG = 78 // EX_CONFIG

/**
 * Ends a start that cannot complete with one JSON log line on stderr, as Cloud Logging reads every
 * other line: a stack trace printed as text would arrive as one log entry per line.
 */
function failStart (message: string, code: number, fields: Record<string, unknown>): never {
  pino(loggerOptions('info'), pino.destination({ dest: 2, sync: true })).fatal({ ...fields, exit_code: code }, message)
  process.exit(code)
}

/**
 * Node prints process warnings (a library's deprecation or notice) as plain text on stderr, which
 * Cloud Logging splits line by line; in the service they become warning lines of pushpool's log.
 */
function logProcessWarnings (log: pino.Logger): void {
  process.removeAllListeners('warning')
  process.on('warning', warning => {
    log.warn({ warning: { name: warning.name, code: (warning as NodeJS.ErrnoException).code } }, warning.message)
  })
}

/** What the production artifact's entry says of how it loaded the server (src/artifact/script.ts). */
export interface ArtifactStart {
  codeCache: CodeCacheState
}

export async function main (env: NodeJS.ProcessEnv = process.env, artifact?: ArtifactStart): Promise<void> {
  let config: Config
  try {
    config = loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) failStart(err.message, EXIT_CONFIG, { problems: err.problems })
    throw err
  }
  // From here on, before the store is opened: its driver may warn (node-postgres does).
  logProcessWarnings(pino(loggerOptions(config.logLevel)))
  let server: FastifyInstance
  try {
    server = await buildServer(config)
  } catch (err) {
    failStart(`pushpool cannot start: ${(err as Error).message}`, EXIT_FAILURE, { err })
  }
  warmUpOnFirstRequest(server)
  let closing = false
  const shutdown = (signal: string): void => {
    if (closing) return
    closing = true
    server.log.info({ signal }, 'shutting down')
    setTimeout(() => {
      server.log.error('shutdown deadline reached; exiting with work in flight (reconcile will finish it)')
      process.exit(1)
    }, SHUTDOWN_DEADLINE_MS).unref()
    // Keep-alive sockets that go idle after close() began would hold it open until their timeout.
    setInterval(() => { server.server.closeIdleConnections() }, 100).unref()
    server.close().then(() => process.exit(0), err => {
      server.log.error({ err }, 'error while shutting down')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => { shutdown('SIGTERM') })
  process.once('SIGINT', () => { shutdown('SIGINT') })
  try {
    await server.listen({ port: config.port, host: config.host })
  } catch (err) {
    failStart(`pushpool cannot start: ${(err as Error).message}`, EXIT_FAILURE, { err })
  }
  // A cold start without the code cache is slower (an image built with other V8 flags, say): said once.
  if (artifact !== undefined) server.log.info({ codeCache: artifact.codeCache }, `started from the artifact, code cache ${artifact.codeCache}`)
}

/** Probes and scrapes, which never need the Google client: they do not warm it up. */
const PROBES = new Set(['/healthz', '/readyz', '/metrics'])

/**
 * A cold instance starts because a request is waiting, mostly a webhook, and its first launch
 * needs the Google client (importing and building it is the largest part of a first dispatch's CPU). The
 * first request that is not a probe starts loading it, so that the load overlaps that request's
 * reads from Prefect instead of following them; /readyz and start-up do not pay for it.
 */
function warmUpOnFirstRequest (server: FastifyInstance): void {
  let started = false
  server.addHook('onRequest', async request => {
    if (started || PROBES.has(request.url.split('?')[0])) return
    started = true
    setImmediate(() => {
      const begun = performance.now()
      warmUpCloudRunClients().then(
        () => { server.log.debug({ ms: Math.round(performance.now() - begun), after: request.url }, 'Google client warmed up') },
        (err: unknown) => { server.log.warn({ err }, 'could not warm up the Google client; the first launch loads it') })
    })
  })
}

// Not a top-level await: the artifact bundles this module into a classic script (scripts/build.ts).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  void main()
}
