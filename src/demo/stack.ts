// The whole push pool on one machine, offline: a Prefect server, the Cloud Run emulator running
// executions as local processes, and pushpool on its embedded SQLite store. Everything listens on
// loopback, and each thing is registered with the caller's Teardown as soon as it has started.
import { mkdtemp, rm } from 'node:fs/promises'
import { createWriteStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { ensurePrefectVenv } from '../devstack/venv.ts'
import { findFreePort, startPrefectServer, type PrefectServer } from '../devstack/prefect-server.ts'
import { startEmulator, type Emulator } from '../emulator/index.ts'
import { buildServer } from '../server.ts'
import { loadConfig } from '../config.ts'
import type { Teardown } from './teardown.ts'

export interface Stack {
  prefect: PrefectServer
  emulator: Emulator
  pushpool: FastifyInstance
  pushpoolUrl: string
  pool: string
  webhookSecret: string
  adminToken: string
  logFile: string
}

/** The push subscription's service account, whose ID token pushpool admits on the execution-end route. */
const EXECUTION_END_PUSHER = 'pushpool-execution-end@demo-project.iam.gserviceaccount.com'
const EXECUTION_END_ROUTE = '/v1/executions/ended'

export interface StackOptions {
  pool: string
  ui: boolean
  progress: (line: string) => void
}

export async function startStack (options: StackOptions, teardown: Teardown): Promise<Stack> {
  const { progress } = options
  const dir = await mkdtemp(join(tmpdir(), 'pushpool-demo-'))
  teardown.add(async () => { await rm(dir, { recursive: true, force: true }) })
  progress(`working directory ${dir} (removed when the demo stops)`)
  progress('checking the Prefect virtualenv (created on first use; this takes a few minutes)')
  const venv = await ensurePrefectVenv({ onProgress: line => { if (/^(Collecting|Successfully)/.test(line)) progress(`  pip: ${line}`) } })

  progress('starting a Prefect server on loopback')
  const prefect = await startPrefectServer({
    venv,
    authString: `demo:${randomBytes(12).toString('hex')}`,
    ui: options.ui,
    // Runs the scheduler creates surface only as Late events; the setup guide lowers this.
    env: { PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS: '5' }
  })
  teardown.add(() => prefect.stop())
  progress(`Prefect server up at ${prefect.apiUrl}`)

  // pushpool's address is chosen first: the emulator pushes each execution's end to it, as Cloud
  // Run's audit log does through Pub/Sub in production, so a run is closed when its container exits.
  const port = await findFreePort()
  const pushpoolUrl = `http://127.0.0.1:${port}`
  progress('starting the Cloud Run emulator (executions run as local processes; their ends pushed to pushpool)')
  const emulator = await startEmulator({
    executions: 'process',
    processEnv: { PATH: `${venv.bin}:${process.env.PATH ?? ''}`, PREFECT_HOME: join(dir, 'prefect-home'), HOME: dir },
    executionEndPush: { url: `${pushpoolUrl}${EXECUTION_END_ROUTE}`, audience: pushpoolUrl, serviceAccountEmail: EXECUTION_END_PUSHER }
  })
  teardown.add(() => emulator.close())

  progress('starting pushpool on its embedded SQLite store')
  const webhookSecret = randomBytes(24).toString('hex')
  const adminToken = randomBytes(24).toString('hex')
  const logFile = join(dir, 'pushpool.log')
  const log = createWriteStream(logFile)
  const config = loadConfig({
    PORT: String(port),
    PUSHPOOL_STORE_URL: `sqlite:${join(dir, 'pushpool.db')}`,
    PREFECT_API_URL: prefect.apiUrl,
    PREFECT_API_AUTH_STRING: prefect.authString ?? '',
    PUSHPOOL_PREFECT_UI_URL: prefect.uiUrl,
    PUSHPOOL_POOLS: options.pool,
    PUSHPOOL_WEBHOOK_SECRETS: webhookSecret,
    PUSHPOOL_ADMIN_TOKENS: adminToken,
    PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
    PUSHPOOL_LOGGING_ENDPOINT: emulator.httpUrl,
    // The demo's Prefect runs on SQLite, which deadlocks far more often under pushpool's events (README).
    PUSHPOOL_PREFECT_EVENTS: 'off',
    PUSHPOOL_GCP_PROJECT: 'demo-project',
    PUSHPOOL_PREFETCH_SECONDS: '2',
    PUSHPOOL_CANCEL_GRACE_SECONDS: '15',
    PUSHPOOL_RETRY_DELAY_SECONDS: '2',
    PUSHPOOL_AUDIENCE: pushpoolUrl,
    PUSHPOOL_EXECUTION_EVENTS_PRINCIPAL: EXECUTION_END_PUSHER,
    PUSHPOOL_GOOGLE_CERTS_URL: emulator.certsUrl,
    LOG_LEVEL: 'info'
  })
  const pushpool = await buildServer(config, { logStream: log })
  teardown.add(async () => { await pushpool.close(); log.end() })
  await pushpool.listen({ port, host: '127.0.0.1' })
  return {
    prefect, emulator, pushpool, pushpoolUrl, pool: options.pool,
    webhookSecret, adminToken, logFile
  }
}
