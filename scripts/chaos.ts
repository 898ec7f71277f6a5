// `npm run chaos [-- --runs N]`: pushpool under faults, load and an instance death, with nothing
// lost, nothing launched twice, and no execution outliving its run.
//
// The load: N flow runs (500 by default) on a real Prefect server; every run's webhook delivered 3
// times, some deliveries concurrent, spread over two pushpool processes (`node src/server.ts`) that
// share one PostgreSQL ledger; reconcile called on both every 10 s, as Cloud Scheduler would.
// The faults: one instance SIGKILLed mid-burst, while it holds leases, and restarted; then a storm of
// concurrent reconciles on both instances every second while the killed instance's leases run out;
// RunJob answering 10% UNAVAILABLE and 5% RESOURCE_EXHAUSTED (half of each after the execution was
// already created), with 50–300 ms of latency on every call; a loopback proxy in front of Prefect
// that answers 5% of pushpool's requests with 503 (the script's own fixtures talk to Prefect
// directly); and a share of runs ended in Prefect while their containers still run (forced
// Cancelled, Crashed or Failed, or left Cancelling for Prefect's own timeout to cancel).
// At the end: every run has exactly one Cloud Run execution (matched by PREFECT__FLOW_RUN_ID), every
// run is terminal in Prefect or dispatched, and no execution still runs whose run has ended. It prints
//   chaos: runs=N duplicates=0 lost=0 zombies=0 crashed_by_faults=K
// and exits non-zero when anything was duplicated, lost, left running or left inconsistent in the ledger.
//
// Peers: the Prefect server of `run-with-peers.ts` when its env is set, else one started here; the
// PostgreSQL of PUSHPOOL_TEST_POSTGRES_URL, else `bash scripts/postgres.sh`. Each run gets a fresh
// database, dropped afterwards. Logs of both instances are kept in a temp dir, printed on failure.

import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { createServer, request as httpRequest, type Server } from 'node:http'
import { randomBytes, randomUUID } from 'node:crypto'
import { createWriteStream, mkdtempSync, readFileSync, rmSync, type WriteStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { startEmulator, type Emulator } from '../src/emulator/index.ts'
import { findFreePort, startPrefectServer } from '../src/devstack/prefect-server.ts'
import { ensurePrefectVenv } from '../src/devstack/venv.ts'
import { PrefectFixtures, PrefectRequestError } from '../test/harness/prefect-fixtures.ts'
import { newTestAuthString, TEST_ENV } from '../test/harness/test-env.ts'
import type { FlowRun } from '../src/prefect/types.ts'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const WEBHOOK_SECRET = `chaos-webhook-${randomBytes(12).toString('hex')}`
const ADMIN_TOKEN = `chaos-admin-${randomBytes(12).toString('hex')}`
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CRASHED', 'CANCELLED'])
/** Dispatch states in which nothing more will happen without a new Scheduled state. */
const SETTLED = new Set(['launched', 'succeeded', 'failed', 'crashed', 'cancelled', 'skipped', 'submit_failed'])

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '500' },
    deliveries: { type: 'string', default: '3' },
    'reconcile-every': { type: 'string', default: '10' },
    'settle-timeout': { type: 'string', default: '420' },
    'prefect-503': { type: 'string', default: '0.05' },
    concurrency: { type: 'string', default: '24' },
    'storm-seconds': { type: 'string', default: '30' },
    'force-end': { type: 'string', default: '0.08' },
    'keep-logs': { type: 'boolean', default: false },
    'shared-prefect': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false }
  }
})
const RUNS = positive('runs')
const DELIVERIES = positive('deliveries')
const RECONCILE_EVERY_MS = positive('reconcile-every') * 1000
const SETTLE_TIMEOUT_MS = positive('settle-timeout') * 1000
const PREFECT_503 = Number(args['prefect-503'])
const CONCURRENCY = positive('concurrency')
const STORM_MS = positive('storm-seconds') * 1000
const FORCE_END = Number(args['force-end'])
/** Prefect's Cancelling timeout on the server this script starts, short so its service acts within the run. */
const CANCELLING_TIMEOUT_SECONDS = 5
const FORCED_MESSAGE = 'chaos: ended while its container runs'

function positive (name: keyof typeof args): number {
  const n = Number(args[name])
  if (!Number.isInteger(n) || n < 1) { process.stderr.write(`chaos: --${name} must be a positive integer\n`); process.exit(2) }
  return n
}

const started = Date.now()
const say = (line: string): void => { if (!args.quiet) process.stderr.write(`[chaos +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`) }
const cleanups: Array<() => Promise<void> | void> = []
const logDir = mkdtempSync(join(tmpdir(), 'pushpool-chaos-'))

// ---------------------------------------------------------------------------------------------
// Peers

/**
 * The Prefect server. By default one of our own on PostgreSQL (a fresh database on the same
 * cluster), as a production Prefect under this load would be: on SQLite, Prefect answers 503
 * ("database is locked") to a good share of concurrent writes and the run measures Prefect's
 * locking rather than pushpool. `--shared-prefect` uses run-with-peers' server instead.
 */
async function prefectPeer (postgresServerUrl: string): Promise<{ apiUrl: string, authString: string, cancellingTimeout: boolean }> {
  const apiUrl = process.env[TEST_ENV.apiUrl]
  const authString = process.env[TEST_ENV.authString]
  // The shared server keeps Prefect's 300 s Cancelling timeout: its runs are not left Cancelling.
  if (args['shared-prefect'] && apiUrl && authString) return { apiUrl, authString, cancellingTimeout: false }
  const database = await freshDatabase(postgresServerUrl, 'prefect_chaos')
  const url = database.replace(/^postgres(ql)?:/, 'postgresql+asyncpg:')
  say('starting a Prefect server on PostgreSQL')
  const venv = await ensurePrefectVenv({ onProgress: line => say(`venv: ${line}`) })
  const own = newTestAuthString()
  const server = await startPrefectServer({
    venv,
    authString: own,
    env: {
      PREFECT_SERVER_DATABASE_CONNECTION_URL: url,
      PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_CANCELLING_TIMEOUT_SECONDS: String(CANCELLING_TIMEOUT_SECONDS),
      PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS: '2'
    }
  })
  cleanups.push(() => server.stop())
  return { apiUrl: server.apiUrl, authString: own, cancellingTimeout: true }
}

async function postgresServer (): Promise<string> {
  const serverUrl = process.env.PUSHPOOL_TEST_POSTGRES_URL
  if (serverUrl) return serverUrl
  say('starting PostgreSQL with scripts/postgres.sh')
  const { stdout } = await promisify(execFile)('bash', [join(REPO, 'scripts', 'postgres.sh')], { cwd: REPO })
  const started = /PUSHPOOL_TEST_POSTGRES_URL=(\S+)/.exec(stdout)?.[1]
  if (!started) throw new Error(`scripts/postgres.sh printed no URL: ${stdout}`)
  return started
}

/** A fresh database on the cluster, dropped at the end; returns its URL. */
async function freshDatabase (serverUrl: string, prefix: string): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`
  await adminSql(serverUrl, `CREATE DATABASE ${name}`)
  cleanups.push(() => adminSql(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

async function adminSql (serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try { await client.query(sql) } finally { await client.end() }
}

/** A loopback HTTP proxy in front of Prefect, for pushpool only: `rate` of requests get a 503 and never reach Prefect. */
interface FaultyProxy { url: string, forwarded: number, injected: number }
async function faultyProxy (target: string, rate: number): Promise<FaultyProxy> {
  const upstream = new URL(target)
  const stats = { forwarded: 0, injected: 0 }
  const server: Server = createServer((req, res) => {
    if (Math.random() < rate) {
      stats.injected++
      req.resume()
      res.writeHead(503, { 'content-type': 'application/json' })
      res.end('{"detail":"chaos proxy: injected 503"}')
      return
    }
    stats.forwarded++
    const forward = httpRequest({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: upstream.host }
    }, upstreamRes => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers)
      upstreamRes.pipe(res)
    })
    forward.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end() })
    req.pipe(forward)
  })
  server.keepAliveTimeout = 5000
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  const { port } = server.address() as { port: number }
  // The API root is /api on the real server; keep the path so PREFECT_API_URL differs only in its port.
  return {
    url: `http://127.0.0.1:${port}${upstream.pathname}`,
    get forwarded () { return stats.forwarded },
    get injected () { return stats.injected }
  }
}

/**
 * RunJob faults, as the issue sets them: 10% UNAVAILABLE and 5% RESOURCE_EXHAUSTED, half of each
 * after the execution was created (the reply is lost, the execution exists). The emulator draws the
 * rules in order and the first that fires decides, so each probability is conditional on the
 * earlier ones not having fired. Every RunJob call also waits 50–300 ms.
 */
function injectRunJobFaults (emulator: Emulator): void {
  emulator.addFault({ method: 'RunJob', latencyMs: [50, 300] })
  const faults: Array<{ code: number, share: number, afterEffect: boolean, message: string }> = [
    { code: 14, share: 0.05, afterEffect: false, message: 'chaos: UNAVAILABLE before the execution was created' },
    { code: 14, share: 0.05, afterEffect: true, message: 'chaos: UNAVAILABLE after the execution was created' },
    { code: 8, share: 0.025, afterEffect: false, message: 'chaos: RESOURCE_EXHAUSTED before the execution was created' },
    { code: 8, share: 0.025, afterEffect: true, message: 'chaos: RESOURCE_EXHAUSTED after the execution was created' }
  ]
  let left = 1
  for (const fault of faults) {
    emulator.addFault({ method: 'RunJob', code: fault.code, probability: fault.share / left, afterEffect: fault.afterEffect, message: fault.message })
    left -= fault.share
  }
}

// ---------------------------------------------------------------------------------------------
// pushpool instances

class Instance {
  readonly name: string
  readonly port: number
  readonly url: string
  private readonly env: Record<string, string>
  private child: ChildProcess | null = null
  private exited: Promise<void> = Promise.resolve()
  private log: WriteStream
  readonly logPath: string
  up = false
  starts = 0

  constructor (name: string, port: number, env: Record<string, string>) {
    this.name = name
    this.port = port
    this.url = `http://127.0.0.1:${port}`
    this.env = env
    this.logPath = join(logDir, `${name}.log`)
    this.log = createWriteStream(this.logPath, { flags: 'a' })
  }

  async start (): Promise<void> {
    this.starts++
    this.log.write(`--- start #${this.starts} at ${new Date().toISOString()}\n`)
    const child = spawn(process.execPath, [join(REPO, 'src', 'server.ts')], {
      cwd: REPO,
      env: { ...this.env, PORT: String(this.port), _TAPJS_PROCESSINFO_COVERAGE_: '0' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.child = child
    child.stdout?.pipe(this.log, { end: false })
    child.stderr?.pipe(this.log, { end: false })
    this.exited = new Promise(resolve => child.once('exit', (code, signal) => {
      this.log.write(`--- exited (${signal ?? code}) at ${new Date().toISOString()}\n`)
      this.up = false
      resolve()
    }))
    const deadline = Date.now() + 30_000
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${this.name} exited before it was ready; see ${this.logPath}`)
      const ok = await fetch(`${this.url}/readyz`).then(async r => { await r.arrayBuffer(); return r.ok }, () => false)
      if (ok) break
      if (Date.now() > deadline) throw new Error(`${this.name} was not ready within 30 s; see ${this.logPath}`)
      await sleep(100)
    }
    this.up = true
  }

  async kill (signal: NodeJS.Signals): Promise<void> {
    this.up = false
    this.child?.kill(signal)
    await this.exited
  }

  async stop (): Promise<void> {
    if (this.child !== null && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM')
      const timer = setTimeout(() => this.child?.kill('SIGKILL'), 12_000)
      await this.exited
      clearTimeout(timer)
    }
    await new Promise<void>(resolve => this.log.end(resolve))
  }
}

async function post (instance: Instance, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number, json: any }> {
  const res = await fetch(`${instance.url}${path}`, { method: 'POST', headers, body, signal: AbortSignal.timeout(60_000) })
  const text = await res.text()
  let json: unknown = null
  try { json = JSON.parse(text) } catch {}
  return { status: res.status, json }
}

const webhookHeaders = { authorization: `Bearer ${WEBHOOK_SECRET}`, 'content-type': 'application/json' }
const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}` }

// ---------------------------------------------------------------------------------------------
// The load

/** A counting semaphore: at most `limit` deliveries in flight, like a bounded automation executor. */
function limiter (limit: number): <T>(work: () => Promise<T>) => Promise<T> {
  let active = 0
  const waiting: Array<() => void> = []
  return async work => {
    if (active >= limit) await new Promise<void>(resolve => waiting.push(resolve))
    active++
    try { return await work() } finally {
      active--
      waiting.shift()?.()
    }
  }
}

interface DeliveryStats { sent: number, byStatus: Map<string, number> }

async function main (): Promise<number> {
  say(`runs=${RUNS} deliveries/run=${DELIVERIES} reconcile every ${RECONCILE_EVERY_MS / 1000} s; logs in ${logDir}`)
  const postgres = await postgresServer()
  const storeUrl = await freshDatabase(postgres, 'pushpool_chaos')
  const peers = await prefectPeer(postgres)
  const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
  const emulator = await startEmulator({ executions: 'hold' })
  cleanups.push(() => emulator.close())
  injectRunJobFaults(emulator)
  const proxy = await faultyProxy(peers.apiUrl, PREFECT_503)

  const { pool, deploymentId } = await prefect.servedPool('chaos', 'proj-chaos')

  const env: Record<string, string> = {
    ...Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !/^(PREFECT_|PUSHPOOL_)/.test(e[0]))),
    PUSHPOOL_STORE_URL: storeUrl,
    PUSHPOOL_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    PUSHPOOL_ADMIN_TOKENS: ADMIN_TOKEN,
    PREFECT_API_URL: proxy.url,
    PREFECT_API_AUTH_STRING: peers.authString,
    PUSHPOOL_POOLS: pool,
    PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
    // A launch whose retries were used up is due again at the next reconcile rather than in 30 s.
    PUSHPOOL_RETRY_DELAY_SECONDS: '5',
    LOG_LEVEL: 'info'
  }
  const instances = [new Instance('a', await findFreePort(), env), new Instance('b', await findFreePort(), env)]
  cleanups.push(async () => { await Promise.all(instances.map(i => i.stop())) })
  await Promise.all(instances.map(i => i.start()))
  say(`pushpool a=${instances[0].url} b=${instances[1].url}, store ${new URL(storeUrl).pathname.slice(1)}, Prefect via faulty proxy ${proxy.url}`)

  // Cloud Scheduler: reconcile on every live instance every RECONCILE_EVERY_MS.
  const reconcileStatuses = new Map<string, number>()
  const reconcileErrors: string[] = []
  let ticking = true
  const reconcileAll = async (): Promise<void> => {
    await Promise.all(instances.filter(i => i.up).map(async instance => {
      try {
        const { status, json } = await post(instance, '/v1/reconcile', adminHeaders)
        reconcileStatuses.set(String(status), (reconcileStatuses.get(String(status)) ?? 0) + 1)
        if (status !== 200) reconcileErrors.push(`${instance.name}: ${status} ${JSON.stringify(json)}`)
      } catch (err) {
        // A reconcile cut off by the SIGKILL is expected; anything else is recorded.
        if (instance.up) reconcileErrors.push(`${instance.name}: ${(err as Error).message}`)
        reconcileStatuses.set('connection-error', (reconcileStatuses.get('connection-error') ?? 0) + 1)
      }
    }))
  }
  const ticker = (async () => {
    while (ticking) {
      await sleep(RECONCILE_EVERY_MS)
      if (ticking) void reconcileAll()
    }
  })()

  // The burst: runs are created as Prefect's UI or run_deployment would, and each run's webhook is
  // delivered DELIVERIES times to random instances: one at once, one concurrently with it for a
  // third of the runs (else shortly after), the rest within a few seconds.
  const runs: string[] = []
  const stats: DeliveryStats = { sent: 0, byStatus: new Map() }
  const limit = limiter(CONCURRENCY)
  const total = RUNS * DELIVERIES
  const killAt = Math.floor(total * 0.4)
  const kill: { done: Promise<void> | null } = { done: null }
  const deliver = (run: string): Promise<void> => limit(async () => {
    const instance = instances[Math.floor(Math.random() * instances.length)]
    stats.sent++
    if (stats.sent === killAt) kill.done = killAndRestart(instances[1])
    const payload = JSON.stringify({ event_id: randomUUID(), event: 'prefect.flow-run.Scheduled', occurred: new Date().toISOString(), resource_id: `prefect.flow-run.${run}` })
    let key: string
    try {
      const res = await post(instance, '/v1/webhooks/prefect', webhookHeaders, payload)
      key = `${res.status}${res.json?.status !== undefined ? ` ${res.json.status}` : res.json?.code !== undefined ? ` ${res.json.code}` : ''}`
    } catch {
      // Prefect's call-webhook never retries: a delivery to a dead instance is simply lost.
      key = 'connection-error'
    }
    stats.byStatus.set(key, (stats.byStatus.get(key) ?? 0) + 1)
  })
  let killedAt = 0
  const killAndRestart = async (victim: Instance): Promise<void> => {
    say(`SIGKILL instance ${victim.name} after ${stats.sent}/${total} deliveries`)
    killedAt = Date.now()
    await victim.kill('SIGKILL')
    await sleep(1500)
    await victim.start()
    say(`instance ${victim.name} restarted; reconcile storms both for ${STORM_MS / 1000} s while its leases run out`)
    // Both instances race to take over what the killed one left, every second, at once.
    for (const stormEnds = Date.now() + STORM_MS; Date.now() < stormEnds;) {
      await Promise.all([reconcileAll(), sleep(1000)])
    }
  }

  const deliveries: Array<Promise<void>> = []
  const create = limiter(4)
  await Promise.all(Array.from({ length: RUNS }, (_, i) => create(async () => {
    const run = await createFlowRun(prefect, deploymentId)
    runs.push(run)
    const concurrent = i % 3 === 0
    deliveries.push(deliver(run))
    deliveries.push(concurrent ? deliver(run) : sleep(Math.random() * 2000).then(() => deliver(run)))
    for (let d = 2; d < DELIVERIES; d++) deliveries.push(sleep(500 + Math.random() * 4500).then(() => deliver(run)))
  })))
  say(`${RUNS} flow runs created`)
  await Promise.all(deliveries)
  if (kill.done !== null) await kill.done
  say(`burst done: ${stats.sent} deliveries ${JSON.stringify(Object.fromEntries(stats.byStatus))}`)
  const forced = await forceEndSome(prefect, emulator, runs, peers.cancellingTimeout)
  say(`ended ${forced.length} runs in Prefect while their containers run: ${JSON.stringify(countBy(forced))}`)

  // Settle: keep reconciling (the ticker goes on) until every run is dispatched and no dispatch is
  // still in flight, or the time is up.
  const settleBy = Date.now() + SETTLE_TIMEOUT_MS
  let view = await observe(instances, runs, emulator, prefect, pool)
  let lastReport = 0
  while (!view.settled && Date.now() < settleBy) {
    if (Date.now() - lastReport > 15_000) {
      lastReport = Date.now()
      say(`settling: ${view.summary}`)
    }
    await sleep(2000)
    view = await observe(instances, runs, emulator, prefect, pool)
  }
  const settledAt = Date.now()
  // One more reconcile on both, then look again: a late duplicate would show up now.
  await reconcileAll()
  await sleep(1000)
  view = await observe(instances, runs, emulator, prefect, pool)
  ticking = false
  await ticker.catch(() => {})
  say(`final: ${view.summary}`)

  const calls = emulator.calls()
  process.stdout.write(`chaos: deliveries=${stats.sent} ${JSON.stringify(Object.fromEntries(stats.byStatus))} ` +
    `reconciles=${JSON.stringify(Object.fromEntries(reconcileStatuses))} runjob_calls=${calls.RunJob ?? 0} ` +
    `prefect_503_injected=${proxy.injected}/${proxy.injected + proxy.forwarded} instance_b_starts=${instances[1].starts} ` +
    `settled=${view.settled} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  for (const problem of view.problems.slice(0, 20)) process.stdout.write(`chaos: ✗ ${problem}\n`)
  if (view.problems.length > 20) process.stdout.write(`chaos: … and ${view.problems.length - 20} more\n`)
  for (const reason of view.crashReasons.slice(0, 10)) process.stdout.write(`chaos: crashed: ${reason}\n`)
  for (const error of reconcileErrors.slice(0, 10)) process.stdout.write(`chaos: reconcile error: ${error}\n`)
  process.stdout.write(`chaos: recovery: the killed instance's work settled ${killedAt === 0 ? 'n/a' : `${((settledAt - killedAt) / 1000).toFixed(0)} s after the kill`}\n`)
  process.stdout.write(`chaos: runs=${runs.length} duplicates=${view.duplicates} lost=${view.lost} zombies=${view.zombies} crashed_by_faults=${view.crashed}\n`)

  const ok = view.duplicates === 0 && view.lost === 0 && view.zombies === 0 && view.problems.length === 0 && runs.length === RUNS
  if (!ok || args['keep-logs']) {
    process.stdout.write(`chaos: instance logs kept in ${logDir}\n`)
    if (!ok) for (const instance of instances) process.stdout.write(tail(instance.logPath, instance.name))
  }
  return ok ? 0 : 1
}

/**
 * Ends FORCE_END of the runs that have an execution while it still runs, as Prefect's own services,
 * a zombie detector, an engine or an operator would: Cancelled, Crashed or Failed by force, or
 * (where the Prefect server has a short Cancelling timeout) started and left Cancelling for
 * Prefect to cancel. Reconcile must then cancel each execution: none may outlive its run.
 */
async function forceEndSome (prefect: PrefectFixtures, emulator: Emulator, runs: string[], cancellingTimeout: boolean): Promise<string[]> {
  const running = new Set(emulator.executions().filter(e => e.completionTime === undefined || e.completionTime === null)
    .map(e => (e.template?.containers?.[0]?.env ?? []).find(v => v.name === 'PREFECT__FLOW_RUN_ID')?.value))
  const chosen = runs.filter(run => running.has(run)).slice(0, Math.round(runs.length * FORCE_END))
  const ends = cancellingTimeout ? ['CANCELLED', 'CRASHED', 'FAILED', 'CANCELLING'] : ['CANCELLED', 'CRASHED', 'FAILED']
  const done: string[] = []
  for (const [i, run] of chosen.entries()) {
    const end = ends[i % ends.length]
    if (end === 'CANCELLING') {
      await prefect.setState(run, { type: 'RUNNING', name: 'Running' }, true)
      await prefect.setState(run, { type: 'CANCELLING', name: 'Cancelling' }, true)
    } else {
      await prefect.setState(run, { type: end as 'CANCELLED', name: end[0] + end.slice(1).toLowerCase(), message: FORCED_MESSAGE }, true)
    }
    done.push(end)
  }
  return done
}

function countBy (values: string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1
  return counts
}

/** The fixtures retry a busy Prefect for ~6 s; a burst can keep it busy longer. */
async function createFlowRun (prefect: PrefectFixtures, deploymentId: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await prefect.createFlowRun(deploymentId)).id
    } catch (err) {
      if (attempt >= 5 || !(err instanceof PrefectRequestError) || err.status !== 503) throw err
      await sleep(1000 * attempt)
    }
  }
}

function tail (path: string, name: string): string {
  try {
    const lines = readFileSync(path, 'utf8').split('\n').filter(l => /"level":(40|50|60)|exited|start #/.test(l))
    return lines.slice(-15).map(l => `chaos: [${name}] ${l.slice(0, 400)}\n`).join('')
  } catch { return '' }
}

// ---------------------------------------------------------------------------------------------
// The verdict

interface DispatchView { id: string, flow_run_id: string, state: string, execution_name: string | null }

interface Observation {
  settled: boolean
  duplicates: number
  lost: number
  /** Executions still running whose run has ended. */
  zombies: number
  crashed: number
  problems: string[]
  crashReasons: string[]
  summary: string
}

async function observe (instances: Instance[], runs: string[], emulator: Emulator, prefect: PrefectFixtures, pool: string): Promise<Observation> {
  const instance = instances.find(i => i.up) ?? instances[0]
  const dispatches = await listDispatches(instance, pool).catch(() => null)
  const flowRuns = await readFlowRuns(prefect, runs)
  const executionsByRun = new Map<string, string[]>()
  const runningByRun = new Map<string, string[]>()
  for (const execution of emulator.executions()) {
    const id = (execution.template?.containers?.[0]?.env ?? []).find(v => v.name === 'PREFECT__FLOW_RUN_ID')?.value
    if (id === undefined) continue
    executionsByRun.set(id, [...executionsByRun.get(id) ?? [], execution.name])
    if (execution.completionTime === undefined || execution.completionTime === null) runningByRun.set(id, [...runningByRun.get(id) ?? [], execution.name])
  }
  const byRun = new Map<string, DispatchView[]>()
  for (const d of dispatches ?? []) byRun.set(d.flow_run_id, [...byRun.get(d.flow_run_id) ?? [], d])

  let duplicates = 0
  let lost = 0
  let zombies = 0
  let crashed = 0
  let inFlight = 0
  const problems: string[] = []
  const crashReasons: string[] = []
  const states = new Map<string, number>()
  for (const run of runs) {
    const executions = executionsByRun.get(run) ?? []
    const flowRun = flowRuns.get(run)
    const type = flowRun?.state?.type ?? 'MISSING'
    const ledger = byRun.get(run) ?? []
    for (const d of ledger) states.set(d.state, (states.get(d.state) ?? 0) + 1)
    inFlight += ledger.filter(d => !SETTLED.has(d.state)).length
    if (executions.length > 1) {
      duplicates++
      problems.push(`${run}: ${executions.length} executions (${executions.map(e => e.split('/').at(-1)).join(', ')}); ledger: ${ledger.map(d => d.state).join(', ')}`)
    }
    if (TERMINAL.has(type) && (runningByRun.get(run) ?? []).length > 0) {
      zombies += (runningByRun.get(run) ?? []).length
      problems.push(`${run}: Prefect says ${type} but its execution ${(runningByRun.get(run) ?? []).map(e => e.split('/').at(-1)).join(', ')} still runs`)
    }
    // Crashed by pushpool reporting a fault, not by this script's own forced ends.
    if (type === 'CRASHED' && !(flowRun?.state?.message ?? '').startsWith(FORCED_MESSAGE)) {
      crashed++
      crashReasons.push(`${run}: ${flowRun?.state?.message ?? ''}`.slice(0, 300))
    }
    if (executions.length === 0 && !TERMINAL.has(type)) {
      lost++
      problems.push(`${run}: no execution and Prefect says ${type}/${flowRun?.state?.name ?? '-'}; ledger: ${ledger.map(d => d.state).join(', ') || 'nothing'}`)
    } else if (executions.length === 1) {
      const named = ledger.find(d => d.execution_name === executions[0])
      if (named === undefined || !SETTLED.has(named.state)) {
        problems.push(`${run}: its execution ${executions[0].split('/').at(-1)} is not recorded as launched in the ledger (${ledger.map(d => `${d.state}:${d.execution_name?.split('/').at(-1) ?? '-'}`).join(', ') || 'nothing'})`)
      }
    }
  }
  if (dispatches === null) problems.push('the ledger could not be listed')
  const settled = dispatches !== null && inFlight === 0 && problems.length === 0
  const executed = runs.filter(r => (executionsByRun.get(r) ?? []).length > 0).length
  return {
    settled,
    duplicates,
    lost,
    zombies,
    crashed,
    problems,
    crashReasons,
    summary: `${executed}/${runs.length} runs have an execution, ${inFlight} dispatches in flight, ${zombies} zombies, ledger ${JSON.stringify(Object.fromEntries(states))}`
  }
}

async function listDispatches (instance: Instance, pool: string): Promise<DispatchView[]> {
  const items: DispatchView[] = []
  let cursor: string | null = null
  do {
    const url = `${instance.url}/v1/dispatches?pool=${encodeURIComponent(pool)}&limit=200${cursor === null ? '' : `&cursor=${cursor}`}`
    const res = await fetch(url, { headers: adminHeaders, signal: AbortSignal.timeout(30_000) })
    if (!res.ok) throw new Error(`GET /v1/dispatches answered ${res.status}`)
    const page = await res.json() as { items: DispatchView[], next_cursor: string | null }
    items.push(...page.items)
    cursor = page.next_cursor
  } while (cursor !== null)
  return items
}

async function readFlowRuns (prefect: PrefectFixtures, ids: string[]): Promise<Map<string, FlowRun>> {
  const found = new Map<string, FlowRun>()
  for (let i = 0; i < ids.length; i += 200) {
    const batch = await prefect.request<FlowRun[]>('POST', '/flow_runs/filter', { flow_runs: { id: { any_: ids.slice(i, i + 200) } }, limit: 200 })
    for (const run of batch) found.set(run.id, run)
  }
  return found
}

// ---------------------------------------------------------------------------------------------

let code = 1
try {
  code = await main()
} catch (err) {
  process.stderr.write(`chaos: failed: ${(err as Error).stack ?? String(err)}\n`)
  process.stdout.write(`chaos: instance logs kept in ${logDir}\n`)
  code = 1
} finally {
  for (const cleanup of cleanups.reverse()) {
    try { await cleanup() } catch (err) { process.stderr.write(`chaos: cleanup: ${(err as Error).message}\n`) }
  }
  if (code === 0 && !args['keep-logs']) rmSync(logDir, { recursive: true, force: true })
}
process.exit(code)
