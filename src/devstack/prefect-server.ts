// Runs a real Prefect 3 server on loopback for tests, the local demo and benchmarks: its own scratch
// PREFECT_HOME (so its own SQLite database), optional Basic auth, telemetry off, and background
// services tuned so that lateness and schedules show up within seconds rather than minutes.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { lineSplitter } from './lines.ts'
import type { PrefectVenv } from './venv.ts'

export interface PrefectServer {
  /** e.g. `http://127.0.0.1:PORT/api`, the value for PREFECT_API_URL. */
  apiUrl: string
  /** e.g. `http://127.0.0.1:PORT`; serves the dashboard only when started with `ui: true`. */
  uiUrl: string
  /** The Basic auth `user:password` the server demands, if any. */
  authString: string | undefined
  /** Leader of the server's process group. */
  pid: number
  /** Stops the server and deletes its PREFECT_HOME if it was a scratch one. Safe to call twice. */
  stop(): Promise<void>
}

export interface StartPrefectServerOptions {
  venv: Pick<PrefectVenv, 'prefect' | 'bin'>
  /** `user:password`; when set every route except health/ready needs `Authorization: Basic …`. */
  authString?: string
  /** Defaults to a free port. */
  port?: number
  /** A PREFECT_HOME to use and keep; defaults to a scratch directory removed by stop(). */
  home?: string
  /** Serve the dashboard (slower to start); default false. */
  ui?: boolean
  /** Extra environment for the server, applied last, so it can override the tuning below. */
  env?: Record<string, string>
  /** Apply FAST_SERVICES (default true); false runs those services at Prefect's own defaults. */
  fastServices?: boolean
  /** Receives each line the server prints. */
  onLog?: (line: string) => void
  /** How long to wait for /api/health; default 90 s. */
  startTimeoutMs?: number
}

// Defaults are 15 s / 5 s / 60 s; tests that wait for a Late run or a scheduled run would crawl.
const FAST_SERVICES: Readonly<Record<string, string>> = {
  // A duration written in ISO 8601, which every Prefect 3 release reads (3.1 refuses a bare "5").
  PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS: 'PT5S',
  PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS: '1',
  PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS: '1',
}

// These are on by default in Prefect 3.8, but pushpool is driven by automations (triggers +
// actions services) reacting to state-change events (event persister), so say so explicitly
// rather than rely on defaults or on a stray setting in the caller's environment.
const AUTOMATION_SERVICES: Readonly<Record<string, string>> = {
  PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: 'true',
  PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED: 'true',
  PREFECT_API_EVENTS_STREAM_OUT_ENABLED: 'true',
}

const GUARD_SCRIPT = fileURLToPath(new URL(`./run-until-parent-exits${extname(import.meta.url)}`, import.meta.url))
const LOG_TAIL_LINES = 60
const HEALTH_POLL_MS = 200
const STOP_TIMEOUT_MS = 20_000

export async function startPrefectServer (opts: StartPrefectServerOptions): Promise<PrefectServer> {
  const port = opts.port ?? await findFreePort()
  const ownsHome = opts.home === undefined
  const home = opts.home ?? await mkdtemp(join(tmpdir(), 'pushpool-prefect-'))
  const uiUrl = `http://127.0.0.1:${port}`
  const apiUrl = `${uiUrl}/api`
  const ui = opts.ui ?? false

  const env: Record<string, string> = {
    ...inheritedEnv(),
    // Whatever the server spawns should find the venv's python and prefect first.
    PATH: [opts.venv.bin, process.env.PATH].filter(Boolean).join(delimiter),
    PREFECT_HOME: home,
    // Besides --host/--port: settings derived from these (the dashboard's API URL above all)
    // would otherwise point at the default 127.0.0.1:4200.
    PREFECT_SERVER_API_HOST: '127.0.0.1',
    PREFECT_SERVER_API_PORT: String(port),
    PREFECT_SERVER_ANALYTICS_ENABLED: 'false',
    DO_NOT_TRACK: '1',
    PREFECT_SERVER_UI_ENABLED: String(ui),
    ...AUTOMATION_SERVICES,
    ...(opts.fastServices === false ? {} : FAST_SERVICES),
    ...(opts.authString !== undefined ? { PREFECT_SERVER_API_AUTH_STRING: opts.authString } : {}),
    ...opts.env,
  }
  const args = ['server', 'start', '--host', '127.0.0.1', '--port', String(port), ui ? '--ui' : '--no-ui', '--analytics-off']
  const guardArgs = [GUARD_SCRIPT, ...(ownsHome ? ['--remove-after', home] : []), opts.venv.prefect, ...args]

  // detached: the guard leads a new process group, so stop() can kill the server and anything it
  // spawned in one go, and a Ctrl-C aimed at the parent's terminal does not reach the server directly.
  const child = spawn(process.execPath, guardArgs, { detached: true, env, stdio: ['pipe', 'pipe', 'pipe'] })
  try {
    await once(child, 'spawn')
  } catch (err) {
    await removeHome()
    throw new Error(`could not spawn ${process.execPath} to run \`${opts.venv.prefect} server start\``, { cause: err })
  }
  const pid = child.pid as number
  // The server must never keep this process alive; if the process ends without stop(), the guard
  // sees its stdin close and stops the server itself.
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as Socket).unref()
  child.unref()

  const logTail: string[] = []
  const onLine = (line: string): void => {
    logTail.push(line)
    if (logTail.length > LOG_TAIL_LINES) logTail.shift()
    opts.onLog?.(line)
  }
  child.stdout.on('data', lineSplitter(onLine))
  child.stderr.on('data', lineSplitter(onLine))

  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `exit code ${code}`))
  })

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => killGroup(pid), STOP_TIMEOUT_MS)
        await exited
        clearTimeout(timer)
      }
      // The guard removes a scratch home itself, unless it was killed before it could.
      await removeHome()
    })()
    return stopping
  }

  async function removeHome (): Promise<void> {
    if (ownsHome) await rm(home, { recursive: true, force: true })
  }

  const startTimeoutMs = opts.startTimeoutMs ?? 90_000
  const started = Date.now()
  let exitedWith: string | undefined
  void exited.then((how) => { exitedWith = how })
  for (;;) {
    if (exitedWith !== undefined) {
      await stop()
      throw new Error(`Prefect server exited during start-up (${exitedWith}). Last output:\n${logTail.join('\n')}`)
    }
    if (await isHealthy(apiUrl, opts.authString)) break
    if (Date.now() - started > startTimeoutMs) {
      await stop()
      throw new Error(`Prefect server at ${apiUrl} was not healthy after ${startTimeoutMs} ms. Last output:\n${logTail.join('\n')}`)
    }
    await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS))
  }

  return { apiUrl, uiUrl, authString: opts.authString, pid, stop }
}

/** Binds 127.0.0.1:0 to let the kernel choose, then releases the port for the server. */
export function findFreePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      probe.close(() => port > 0 ? resolve(port) : reject(new Error('could not read the probe port')))
    })
  })
}

// The caller's own PREFECT_* settings (a client's PREFECT_API_URL, a profile, a database URL)
// belong to some other server; the scratch server must not pick them up.
function inheritedEnv (): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('PREFECT_')) env[key] = value
  }
  return env
}

/** Authenticated when the server demands it: until 3.1.13 Prefect's basic auth covered /health too. */
async function isHealthy (apiUrl: string, authString: string | undefined): Promise<boolean> {
  const status = await healthStatus(apiUrl, authString, 2_000)
  return status !== null && status >= 200 && status < 300
}

/** The status the server's health route answers with within `timeoutMs`; null when it does not answer. */
export async function healthStatus (apiUrl: string, authString: string | undefined, timeoutMs: number): Promise<number | null> {
  const headers: Record<string, string> = authString === undefined ? {} : { authorization: `Basic ${Buffer.from(authString).toString('base64')}` }
  try {
    const res = await fetch(`${apiUrl}/health`, { headers, signal: AbortSignal.timeout(timeoutMs) })
    await res.body?.cancel()
    return res.status
  } catch {
    return null
  }
}

function killGroup (pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
  }
}
