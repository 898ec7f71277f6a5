// pushpool as its own process — `node src/server.ts`, or a compiled entry — configured through
// the environment as in production. Timings start just before spawn(); CPU and memory are read
// from /proc, so they are pushpool's alone.
import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { findFreePort } from '../src/devstack/prefect-server.ts'
import { HttpClient, probe } from './http.ts'
import { cpuMs, cpuSplitMs, peakRssMb, rssMb } from './proc.ts'

export const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)))
export const TMP = join(REPO, 'bench', 'tmp')
export const WEBHOOK_SECRET = 'bench-webhook-secret-0123456789abcdef'
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef'

export interface PushpoolOptions {
  /** The entry script; `src/server.ts` by default. */
  entry?: string
  env: Record<string, string>
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[]
  /** A name for the log file and the store under bench/tmp. */
  name: string
  port?: number
  /** Reuse this SQLite file rather than a fresh one. */
  storePath?: string
}

export interface PushpoolProcess {
  url: string
  port: number
  pid: number
  /** ms from just before spawn() to the first /readyz 200. */
  readyMs: number
  /** performance.now() just before spawn(). */
  spawnedAt: number
  client: HttpClient
  logFile: string
  cpuMs (): number
  cpuSplitMs (): { user: number, system: number }
  rssMb (): number
  peakRssMb (): number
  webhook (flowRunId: string, event?: string): Promise<{ status: number, body: any }>
  reconcile (): Promise<any>
  /** GET an admin route's body; throws unless 200. */
  admin (path: string): Promise<string>
  /** SIGTERM, then wait for exit (SIGKILL after 15 s). */
  stop (): Promise<void>
}

export function webhookBody (flowRunId: string, event = 'prefect.flow-run.Scheduled'): string {
  return JSON.stringify({
    event_id: crypto.randomUUID(),
    event,
    occurred: new Date().toISOString(),
    resource_id: `prefect.flow-run.${flowRunId}`
  })
}

const WEBHOOK_HEADERS = { authorization: `Bearer ${WEBHOOK_SECRET}`, 'content-type': 'application/json' }
const ADMIN_HEADERS = { authorization: `Bearer ${ADMIN_TOKEN}` }

let sequence = 0

export async function startPushpool (options: PushpoolOptions): Promise<PushpoolProcess> {
  const port = options.port ?? await findFreePort()
  const tag = `${options.name}-${process.pid}-${++sequence}`
  mkdirSync(TMP, { recursive: true })
  const logFile = join(TMP, `${tag}.log`)
  const storePath = options.storePath ?? join(TMP, `${tag}.db`)
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    PORT: String(port),
    PUSHPOOL_STORE_URL: `sqlite:${storePath}`,
    PUSHPOOL_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    PUSHPOOL_ADMIN_TOKENS: ADMIN_TOKEN,
    PUSHPOOL_GCP_PROJECT: 'bench',
    LOG_LEVEL: 'info',
    ...options.env
  }
  // Logs go to a file by fd: what a log agent reading stdout would cost pushpool, no more.
  const fd = openSync(logFile, 'a')
  const spawnedAt = performance.now()
  const child: ChildProcess = spawn(process.execPath, [...options.nodeArgs ?? [], options.entry ?? 'src/server.ts'],
    { cwd: REPO, env, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  let exited: string | null = null
  const exit = new Promise<void>(resolve => child.once('exit', (code, signal) => { exited = `${code ?? signal}`; resolve() }))
  const url = `http://127.0.0.1:${port}`
  let readyMs = Number.NaN
  for (;;) {
    if (exited !== null) throw new Error(`pushpool (${tag}) exited during start-up (${exited}); see ${logFile}`)
    if (await probe(`${url}/readyz`) === 200) { readyMs = performance.now() - spawnedAt; break }
    if (performance.now() - spawnedAt > 30_000) { child.kill('SIGKILL'); throw new Error(`pushpool (${tag}) not ready after 30 s; see ${logFile}`) }
    await sleep(2)
  }
  const client = new HttpClient(url, 1024)
  const pid = child.pid as number
  return {
    url,
    port,
    pid,
    readyMs,
    spawnedAt,
    client,
    logFile,
    cpuMs: () => cpuMs(pid),
    cpuSplitMs: () => cpuSplitMs(pid),
    rssMb: () => rssMb(pid),
    peakRssMb: () => peakRssMb(pid),
    async webhook (flowRunId, event) {
      const reply = await client.send('POST', '/v1/webhooks/prefect', WEBHOOK_HEADERS, webhookBody(flowRunId, event))
      return { status: reply.status, body: reply.body === '' ? null : JSON.parse(reply.body) }
    },
    async reconcile () {
      const reply = await client.send('POST', '/v1/reconcile', ADMIN_HEADERS, undefined, 120_000)
      if (reply.status !== 200) throw new Error(`reconcile answered ${reply.status}: ${reply.body.slice(0, 300)}`)
      return JSON.parse(reply.body)
    },
    async admin (path) {
      const reply = await client.send('GET', path, ADMIN_HEADERS)
      if (reply.status !== 200) throw new Error(`GET ${path} answered ${reply.status}: ${reply.body.slice(0, 300)}`)
      return reply.body
    },
    async stop () {
      client.close()
      if (exited !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await exit
      clearTimeout(timer)
    }
  }
}
