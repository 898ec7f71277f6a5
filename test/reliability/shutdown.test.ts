// Graceful shutdown: a real `node src/server.ts` receives SIGTERM in the middle of a
// burst of webhooks whose launches are slow (RunJob takes 1–2.5 s). The process must exit within
// Cloud Run's 10 s; each in-flight dispatch either finishes or is left in the ledger for reconcile.
// A fresh instance on the same SQLite file then reconciles (and redrives what a dead process left
// mid-drive, as reconcile does once such a drive is stale), and every run ends with exactly one
// execution: none lost, none launched twice.
import t, { type Test } from 'tap'
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { executionsOf } from '../harness/scene.ts'
import { build, webhookHeaders, webhookPayload, adminHeaders, servingEnv } from '../helper.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { findFreePort } from '../../src/devstack/prefect-server.ts'
import type { FastifyInstance } from 'fastify'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const RUNS = 16
const LATE = 8
const SLOW_RUNS = 6
const SLOW_RUNJOB_MS = 11_000

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

/** Ledger states of a dispatch whose drive has not finished. */
const UNSETTLED = ['received', 'claimed', 'launching', 'retrying', 'deferred']

type Reply = { run: string, status: number | 'refused', body: string }

/** A webhook on its way: its reply, once it has come. */
interface Delivery { run: string, reply: Promise<Reply>, settled: Reply | null }

/** Delivers the webhooks of `runs` at once, keeping each reply as it comes. */
function deliverAll (runs: string[], deliver: (run: string) => Promise<Reply>): Delivery[] {
  return runs.map(run => {
    const delivery: Delivery = { run, reply: deliver(run), settled: null }
    void delivery.reply.then(reply => { delivery.settled = reply })
    return delivery
  })
}

/**
 * A webhook turned away before anything was recorded, because Prefect did not answer the run's
 * read within its deadline (a loaded machine): the run is reconcile's, by design.
 */
function turnedAway (reply: Reply | null): boolean {
  return reply !== null && reply.status === 503 && codeOf(reply) === 'PREFECT_UNAVAILABLE'
}

/** The error code a reply's body names, if it is JSON with one. */
function codeOf (reply: Reply): string | undefined {
  try {
    return (JSON.parse(reply.body) as { code?: string }).code
  } catch {
    return undefined
  }
}

/**
 * Waits until each webhook of the burst is in flight (the server has recorded its dispatch) or was
 * turned away by a Prefect too slow to answer. Prefect stalls on a busy machine, so this waits as
 * long as the fixtures do for a busy Prefect (120 s), not as long as a quiet run takes.
 */
async function burstRecorded (url: string, pool: string, burst: Delivery[]): Promise<void> {
  let waiting = burst
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(100)) {
    const res = await fetch(`${url}/v1/dispatches?pool=${pool}&limit=200`, { headers: adminHeaders() }).catch(() => null)
    const items = res?.ok === true ? (await res.json() as { items: Array<{ flow_run_id: string }> }).items : []
    const recorded = new Set(items.map(item => item.flow_run_id))
    waiting = burst.filter(d => !recorded.has(d.run) && !turnedAway(d.settled))
    if (waiting.length === 0) return
  }
  throw new Error(`the server recorded no dispatch for ${waiting.length} of ${burst.length} webhooks within 120 s, nor turned them away`)
}

interface Serving {
  pool: string
  runs: string[]
  /** The server's environment: a fresh instance given it works on the same SQLite ledger. */
  env: Record<string, string>
  url: string
  child: ChildProcessByStdio<null, Readable, Readable>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>
  /** All the server has printed so far, stdout and stderr. */
  output: () => string
  /** Delivers the webhook for `run`; a closed port is a reply too ('refused'). */
  deliver: (run: string) => Promise<Reply>
}

/**
 * A Cloud Run work pool named `${prefix}-…` with `count` flow runs, and a real `node src/server.ts`
 * serving it on its own SQLite ledger, ready (/readyz answers).
 */
async function serving (t: Test, prefix: string, count: number): Promise<Serving> {
  const { pool, deploymentId } = await prefect.servedPool(prefix, 'proj-shutdown')
  const runs: string[] = []
  for (let i = 0; i < count; i++) runs.push((await prefect.createFlowRun(deploymentId)).id)

  const dir = mkdtempSync(join(tmpdir(), 'pushpool-shutdown-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const storeUrl = `sqlite:${join(dir, 'pushpool.db')}`
  const env = servingEnv({ storeUrl, prefect: peers, pool, cloudRunEndpoint: emulator.endpoint })
  const port = await findFreePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, [join(REPO, 'src', 'server.ts')], {
    cwd: REPO,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, PORT: String(port), LOG_LEVEL: 'info', _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString('utf8') })
  child.stderr.on('data', (c: Buffer) => { output += c.toString('utf8') })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>(resolve =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  for (const deadline = Date.now() + 30_000; ;) {
    if (await fetch(`${url}/readyz`).then(r => r.ok, () => false)) break
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`pushpool did not start:\n${output}`)
    await sleep(100)
  }

  const deliver = async (run: string): Promise<Reply> => {
    try {
      const res = await fetch(`${url}/v1/webhooks/prefect`, { method: 'POST', headers: webhookHeaders(), body: webhookPayload(run) })
      return { run, status: res.status, body: await res.text() }
    } catch {
      return { run, status: 'refused', body: '' }
    }
  }
  return { pool, runs, env, url, child, exited, output: () => output, deliver }
}

/**
 * A fresh instance on the same ledger: reconcile picks up the webhooks that found the door shut.
 * Returns the dispatches still left mid-drive, for `redriveAndCheck`.
 */
async function reconcileOnAFreshInstance (t: Test, { env, pool }: Serving): Promise<{ fresh: FastifyInstance, leftBehind: Array<{ id: string, state: string }> }> {
  const fresh = await build(t, { env: { ...env, LOG_LEVEL: 'silent' } })
  const reconcile = await fresh.inject({ method: 'POST', url: '/v1/reconcile', headers: adminHeaders() })
  t.equal(reconcile.statusCode, 200)
  const list = await fresh.inject({ method: 'GET', url: `/v1/dispatches?pool=${pool}&limit=200`, headers: adminHeaders() })
  const leftBehind = (list.json().items as Array<{ id: string, state: string }>).filter(d => UNSETTLED.includes(d.state))
  t.comment(`left for reconcile: ${JSON.stringify(leftBehind.map(d => d.state))}`)
  return { fresh, leftBehind }
}

/**
 * Drives the old process left mid-way are redriven, as reconcile does once they are stale; then
 * every run must have exactly one execution, recorded in the ledger.
 */
async function redriveAndCheck (t: Test, fresh: FastifyInstance, leftBehind: Array<{ id: string, state: string }>, { pool, runs }: Serving): Promise<void> {
  for (const dispatch of leftBehind) {
    // The dead process's lease on a drive it left mid-call outlives it by the call's deadline: the
    // redrive is refused (DISPATCH_BUSY) until then, as reconcile's takeover would wait. On a loaded
    // machine Prefect may also be too slow for the redrive's read (PREFECT_UNAVAILABLE): again later.
    const again = (res: { statusCode: number, json: () => { code?: string } }): boolean =>
      (res.statusCode === 409 && res.json().code === 'DISPATCH_BUSY') || (res.statusCode === 503 && res.json().code === 'PREFECT_UNAVAILABLE')
    let res = await fresh.inject({ method: 'POST', url: `/v1/dispatches/${dispatch.id}/redrive`, headers: adminHeaders() })
    for (const until = Date.now() + 120_000; again(res) && Date.now() < until;) {
      await sleep(500)
      res = await fresh.inject({ method: 'POST', url: `/v1/dispatches/${dispatch.id}/redrive`, headers: adminHeaders() })
    }
    // A waiting dispatch may be driven by this instance's own retry timer (or a redrive before it
    // freed a slot) between the listing and its redrive: then it is no longer redrivable, rightly.
    const now = res.statusCode === 409 && res.json().code === 'DISPATCH_NOT_REDRIVABLE'
      ? (await fresh.inject({ method: 'GET', url: `/v1/dispatches/${dispatch.id}`, headers: adminHeaders() })).json().dispatch.state as string
      : null
    t.ok(res.statusCode === 200 || (now !== null && !UNSETTLED.includes(now)),
      `redrive of a ${dispatch.state} dispatch: ${res.statusCode === 200 ? 'taken' : now !== null ? `already driven on (${now})` : res.body}`)
  }
  // On a loaded machine a redriven drive may meet a Prefect read that times out and be deferred
  // for a retry: drive those again until every run's dispatch has settled (or two minutes pass).
  // A webhook turned away (PREFECT_UNAVAILABLE) left its run with no dispatch, for reconcile to
  // discover; a pass that met a Prefect as slow leaves it to the next, as Cloud Scheduler's next
  // tick would: pass again while any run has none.
  type Listed = { id: string, flow_run_id: string, state: string, execution_name: string | null }
  const list = async (): Promise<Listed[]> => (await fresh.inject({ method: 'GET', url: `/v1/dispatches?pool=${pool}&limit=200`, headers: adminHeaders() })).json().items as Listed[]
  let after: Listed[] = []
  for (const until = Date.now() + 120_000; Date.now() < until; await sleep(1000)) {
    const report = (await fresh.inject({ method: 'POST', url: '/v1/reconcile', headers: adminHeaders() })).json()
    if (report.errors > 0) t.comment(`a reconcile pass met: ${JSON.stringify(report.failures)}`)
    after = await list()
    const unsettled = after.filter(d => UNSETTLED.includes(d.state))
    if (unsettled.length === 0 && runs.every(run => after.some(d => d.flow_run_id === run))) break
    for (const d of unsettled) await fresh.inject({ method: 'POST', url: `/v1/dispatches/${d.id}/redrive`, headers: adminHeaders() })
  }
  for (const run of runs) {
    const executions = executionsOf(emulator, run)
    const dispatches = after.filter(d => d.flow_run_id === run)
    t.equal(executions.length, 1, `${run.slice(0, 8)}: exactly one execution (ledger: ${dispatches.map(d => d.state).join(', ')})`)
    t.ok(dispatches.some(d => d.state === 'launched' && d.execution_name === executions[0]?.name), `${run.slice(0, 8)}: the ledger records it launched`)
  }
}

t.test('SIGTERM during a burst: exits within 10 s, and nothing is lost or launched twice', async t => {
  const server = await serving(t, 'shutdown', RUNS + LATE)
  const { runs, url, pool, child, deliver } = server

  // Slow launches, so that SIGTERM finds dispatches in every stage of their drive.
  emulator.addFault({ method: 'RunJob', latencyMs: [1000, 2500] })
  t.teardown(() => emulator.clearFaults())
  const burst = deliverAll(runs.slice(0, RUNS), deliver)
  // Every burst webhook is in flight (its dispatch exists; its launch takes 1–2.5 s) when SIGTERM comes.
  await burstRecorded(url, pool, burst)
  const sigterm = Date.now()
  child.kill('SIGTERM')
  // Deliveries keep coming while it drains, as Prefect's automations would.
  const late: Array<Promise<Reply>> = []
  for (const run of runs.slice(RUNS)) {
    late.push(deliver(run))
    await sleep(250)
  }
  const { code, signal, at } = await server.exited
  const exitMs = at - sigterm
  const replies = [...await Promise.all(burst.map(d => d.reply)), ...await Promise.all(late)]
  t.comment(`exited ${signal ?? code} ${exitMs} ms after SIGTERM; replies ${JSON.stringify(replies.map(r => r.status))}`)

  const output = server.output()
  t.ok(exitMs < 10_000, `exited ${exitMs} ms after SIGTERM (Cloud Run kills at 10 s)`)
  // Status 1 means the 9 s hard deadline fired. That happens when a keep-alive connection whose
  // response completed just after server.close() stays open until keepAliveTimeout (10 s).
  t.equal(code, 0, 'with status 0: it drained and closed before its own 9 s deadline')
  if (code !== 0) t.comment(output.split('\n').filter(l => /shutting|deadline|in flight|error/i.test(l)).join('\n'))
  t.match(output, /shutting down/, 'it logged the shutdown')
  const inBurst = replies.slice(0, RUNS)
  t.ok(inBurst.every(r => r.status === 202 || r.status === 200 || turnedAway(r)),
    'every webhook received before SIGTERM was answered (or left to reconcile by a Prefect too slow to read), none dropped')
  // A refusal while draining is OVERLOADED. A webhook that reached the route just before the drain
  // began may instead have met a Prefect read past its deadline (a loaded machine, Prefect busy with
  // the burst): PREFECT_UNAVAILABLE, which leaves the run to reconcile just the same.
  for (const reply of replies.filter(r => r.status === 503)) {
    const code = codeOf(reply)
    t.ok(code === 'OVERLOADED' || code === 'PREFECT_UNAVAILABLE', `a webhook answered 503 while draining says why, with a code from the table: ${reply.body}`)
  }
  t.ok(replies.every(r => r.status === 202 || r.status === 200 || r.status === 503 || r.status === 'refused'),
    'webhooks during the drain are answered 503 or find the port closed; Prefect treats either as delivered')

  const { fresh, leftBehind } = await reconcileOnAFreshInstance(t, server)
  await redriveAndCheck(t, fresh, leftBehind, server)
})

t.test('launches slower than the drain: exits within 10 s anyway, and reconcile finishes them exactly once', async t => {
  const server = await serving(t, 'shutdown-slow', SLOW_RUNS)
  const { runs, url, pool, child, deliver } = server

  // RunJob answers only after 11 s: longer than the drain (7 s) and than Cloud Run's grace, so the
  // process must go with launches in flight. Cloud Run still creates those executions.
  emulator.addFault({ method: 'RunJob', latencyMs: SLOW_RUNJOB_MS })
  t.teardown(() => emulator.clearFaults())
  emulator.resetCalls()
  const burst = deliverAll(runs, deliver)
  await burstRecorded(url, pool, burst)
  // SIGTERM once a launch is under way. On a loaded machine Prefect's reads may defer every drive
  // before its RunJob; their retries get there later.
  for (const until = Date.now() + 90_000; (emulator.calls().RunJob ?? 0) === 0 && Date.now() < until;) await sleep(100)
  t.ok((emulator.calls().RunJob ?? 0) > 0, 'a launch was under way (RunJob called) when SIGTERM came')
  const sigterm = Date.now()
  child.kill('SIGTERM')
  const { code, signal, at } = await server.exited
  const exitMs = at - sigterm
  const replies = await Promise.all(burst.map(d => d.reply))
  t.comment(`exited ${signal ?? code} ${exitMs} ms after SIGTERM; replies ${JSON.stringify(replies.map(r => r.status))}`)

  t.ok(exitMs < 10_000, `exited ${exitMs} ms after SIGTERM (Cloud Run kills at 10 s)`)
  t.match(server.output(), /in flight/, 'it said it left dispatches in flight for reconcile')
  t.ok(replies.every(r => r.status === 202 || turnedAway(r)),
    'every webhook was answered 202 within its deadline (or left to reconcile by a Prefect too slow to read), before the exit')
  // Reconcile takes over a drive once it is stale (120 s); by then the RunJob calls the dead
  // process made have completed in Cloud Run. Here: wait until they have (11 s each).
  for (const until = Date.now() + 30_000; Date.now() < until && runs.some(run => executionsOf(emulator, run).length === 0);) await sleep(200)

  emulator.clearFaults()
  const { fresh, leftBehind } = await reconcileOnAFreshInstance(t, server)
  t.ok(leftBehind.length > 0, 'the exit left drives in flight')
  await redriveAndCheck(t, fresh, leftBehind, server)
})
