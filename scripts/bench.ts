// `npm run bench`: pushpool against Prefect's own polling worker, side by side in one run, and
// pushpool's own cost. Writes bench/results.json and bench/RESULTS.md (or, with --quick, smaller
// counts written to bench/tmp/ as a smoke run). The figures and how each is taken: bench/*.ts.
//
//   node scripts/bench.ts [--quick] [--only pickup,scheduled,api,cost,real,profile,memory,cold,burst]
//
// Order: the phases that need the real Prefect server first (its background services load the
// machine), then the server is stopped before the phases that measure pushpool alone.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { startEmulator, emulatorClientOptions, type Emulator } from '../src/emulator/index.ts'
import { findFreePort } from '../src/devstack/prefect-server.ts'
import { buildService, deployedConcurrency } from '../bench/build.ts'
import { describeMachine } from '../bench/machine.ts'
import { startRealPrefect, setupPushpoolPool, helloDeployment, startProcessWorker, lateAndSchedulerSettings, type RealPrefect } from '../bench/peers.ts'
import { startPushpool, REPO, TMP, type PushpoolProcess } from '../bench/pushpool-process.ts'
import { measurePickup, pendingParts, webhookArrivals } from '../bench/pickup.ts'
import { measureSchedule, type ScheduledRun, type ScheduleResult } from '../bench/scheduled.ts'
import { startReconcileTimer } from '../bench/reconcile-timer.ts'
import { measureApiCalls, total, type ApiCallsResult } from '../bench/api-calls.ts'
import { captureSeed } from '../bench/seed.ts'
import { startLoopbackPeers, type LoopbackPeers } from '../bench/loopback-peers.ts'
import { measureCost } from '../bench/cost.ts'
import { measureColdStarts, type ColdStartResult } from '../bench/cold-start.ts'
import { measureMemory } from '../bench/memory.ts'
import { measureBurst } from '../bench/burst.ts'
import { startPrefectStandIn, type StandInSeed } from '../src/devstack/prefect-standin.ts'
import { newestProfile, summarizeProfile } from '../bench/profile.ts'
import { sendWebhooks } from '../bench/load.ts'
import { summarize } from '../bench/stats.ts'
import { writeReport } from '../bench/report.ts'
import { measureModuleCost } from '../bench/module-cost.ts'
import type { ColdStartFigure, Results, ScheduledFigure, StoreVariantCost } from '../bench/results.ts'
import { provideTestPostgres } from '../test/harness/postgres-server.ts'
import { freshDatabase } from '../test/store/postgres-database.ts'

const PHASES = ['pickup', 'scheduled', 'api', 'cost', 'real', 'profile', 'memory', 'cold', 'burst'] as const
type Phase = typeof PHASES[number]

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' }
  }
})
const quick = flags.quick === true
const only = new Set((flags.only ?? PHASES.join(',')).split(',').map(s => s.trim()) as Phase[])
for (const phase of only) if (!PHASES.includes(phase)) throw new Error(`unknown phase "${phase}"; phases: ${PHASES.join(', ')}`)
const outDir = flags.out ?? (quick ? TMP : join(REPO, 'bench'))
/** Webhooks in flight at once for throughput and memory: the deployed concurrency. */
const CONCURRENCY = deployedConcurrency()

// Counts. Full: at least 5 repetitions of every figure (10+ starts for cold start); the burst is
// one run, since it lasts over 3 minutes by construction.
const N = quick
 ? { pickup: 4, scheduled: 3, scheduledEvery: 10, firstRuns: 3, firstRunRounds: 1, api: 2, runSeconds: 20, reconcileSeconds: 20, costReps: 2, sequential: 50, throughputRuns: 200, concurrency: CONCURRENCY, realReps: 2, realSequential: 8, realThroughput: 16, realConcurrency: 8, profileRuns: 150, starts: 3, memoryBurst: 300, burstRuns: 100, burstPerMinute: 50, burstLimitS: 240 }
  : { pickup: 30, scheduled: 8, scheduledEvery: 15, firstRuns: 4, firstRunRounds: 2, api: 5, runSeconds: 60, reconcileSeconds: 60, costReps: 5, sequential: 200, throughputRuns: 1000, concurrency: CONCURRENCY, realReps: 5, realSequential: 10, realThroughput: 40, realConcurrency: 16, profileRuns: 500, starts: 12, memoryBurst: 1000, burstRuns: 1000, burstPerMinute: 300, burstLimitS: 540 }

const POOL = { push: 'bench-push', pushTasks: 'bench-push-tasks', worker: 'bench-worker', cost: 'bench-cost' }
/** Reconcile period while measuring scheduled runs: Cloud Scheduler's minimum. */
const RECONCILE_S = 60
const PREFETCH_S = 10
/**
 * Steady state: the schedule is added this long before its first run is due, more than a reconcile
 * tick plus the scheduler's recent-deployments loop (5 s) and the prefetch, so a pass sees every run
 * before its timer is due, as it does once Prefect's scheduler makes runs hours ahead.
 */
const STEADY_LEAD_S = RECONCILE_S + 30
/** The first runs of a schedule: added this long before the first is due, all due within one tick of it. */
const FIRST_RUNS_LEAD_S = 10
const FIRST_RUNS_EVERY_S = 15
const WORKER_POLL_S = 10 // PREFECT_WORKER_QUERY_SECONDS, default

const t0 = performance.now()
const log = (line: string): void => {
  const s = ((performance.now() - t0) / 1000).toFixed(0).padStart(5)
  process.stdout.write(`${s}s ${line}\n`)
}
const cleanups: Array<() => Promise<unknown>> = []
const later = <T extends { stop: () => Promise<unknown> } | { close: () => Promise<unknown> }>(thing: T): T => {
  cleanups.push(() => ('stop' in thing ? thing.stop() : thing.close()).catch(() => undefined))
  return thing
}
async function release (thing: { stop: () => Promise<unknown> } | { close: () => Promise<unknown> } | null | undefined): Promise<void> {
  if (thing === null || thing === undefined) return
  await ('stop' in thing ? thing.stop() : thing.close()).catch(() => undefined)
}
async function cleanupAll (): Promise<void> {
  for (const fn of cleanups.reverse()) await fn()
  cleanups.length = 0
}
process.once('SIGINT', () => { void cleanupAll().then(() => process.exit(130)) })
process.once('SIGTERM', () => { void cleanupAll().then(() => process.exit(143)) })

const results: Results = {
  meta: {
    mode: quick ? 'quick' : 'full',
    phases: [...only],
    machine: null,
    entry: '',
    notes: []
  },
  load_average: {}
}
/** Runs one phase; a failure is recorded in the results' notes and the run goes on. */
async function phase (name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    failed(name, err as Error)
  }
}
function failed (name: string, err: Error): void {
  const message = `phase "${name}" failed: ${err.message.split('\n')[0]}`
  log(`  ${message}`)
  results.meta.notes.push(message)
}
const noteLoad = (phase: string): void => { results.load_average[phase] = loadavg().map(v => Math.round(v * 100) / 100) }
/** The Dockerfile's runtime ENV, with which the cold-start and memory figures run the artifact (as the image does). */
let imageEnv: Record<string, string> = {}

async function main (): Promise<void> {
  rmSync(TMP, { recursive: true, force: true })
  mkdirSync(TMP, { recursive: true })
  log(`pushpool bench (${quick ? 'quick' : 'full'}): ${[...only].join(', ')}`)

  const build = buildService()
  const entry = build.entry
  imageEnv = build.env
  results.meta.entry = `node ${entry} (scripts/build.ts: the server script and its trained code cache, as the Dockerfile runs dist/server.js)`
  log(`built the service into bench/tmp/dist in ${(build.ms / 1000).toFixed(1)} s`)

  const needsRealPrefect = true // the stand-in is seeded with a real server's objects
  let prefect: RealPrefect | null = null
  let seed: StandInSeed
  if (needsRealPrefect) {
    log('starting the Prefect server (repo venv)…')
    prefect = later(await startRealPrefect(log))
    results.meta.machine = describeMachine(prefect.venv.python)
    results.meta.prefect_server_env = prefect.serverEnv
    log(`Prefect ${await prefect.fixtures.request('GET', '/admin/version')} at ${prefect.apiUrl}`)
    await setupPushpoolPool(prefect, POOL.cost, 'http://127.0.0.1:9', false)
    const costDeployment = await helloDeployment(prefect, POOL.cost, 'hello-cost')
    seed = await captureSeed(prefect, POOL.cost, costDeployment)
    writeFileSync(join(TMP, 'seed.json'), JSON.stringify(seed))

    if (only.has('pickup') || only.has('scheduled')) await phase('pickup/scheduled/api', () => pickupAndScheduled(prefect!, entry, seed))
    else if (only.has('api')) await phase('api', async () => { results.api_calls_raw = await apiCalls(seed) })
    if (only.has('real')) await phase('real', () => realCost(prefect!, entry, costDeployment))
    log('stopping the Prefect server')
    await release(prefect)
  }

  if (only.has('cost') || only.has('profile') || only.has('memory') || only.has('cold')) {
    const peers = later(await startLoopbackPeers(seed!))
    if (only.has('cost')) await phase('cost', () => standInCost(peers, entry, seed!))
    if (only.has('profile')) await phase('profile', () => profileDispatch(peers, entry, seed!))
    if (only.has('memory')) {
      await phase('memory', async () => {
        noteLoad('memory')
        log(`memory: idle, then ${N.memoryBurst} webhooks, ${CONCURRENCY} at once (the deployed concurrency), three times`)
        results.memory = await measureMemory({ entry, env: imageEnv, peers, pool: seed!.workPool.name, burstRuns: N.memoryBurst, bursts: 3, concurrency: CONCURRENCY, log })
      })
    }
    if (only.has('cold')) await phase('cold', () => coldStart(peers, entry, seed!))
    await release(peers)
  }
  if (only.has('burst')) await phase('burst', () => burst(entry, seed!))

  results.meta.finished = new Date().toISOString()
  results.meta.duration_s = Math.round((performance.now() - t0) / 1000)
  const { json, markdown } = writeReport(results, outDir)
  log(`wrote ${json} and ${markdown}`)
}

// ---------------------------------------------------------------- pickup, scheduled, API calls

async function pickupAndScheduled (prefect: RealPrefect, entry: string, seed: StandInSeed): Promise<void> {
  const emulator: Emulator = later(await startEmulator({ executions: 'hold' }))
  const ports = { push: await findFreePort(), pushTasks: await findFreePort() }
  await setupPushpoolPool(prefect, POOL.push, `http://127.0.0.1:${ports.push}`, true)
  await setupPushpoolPool(prefect, POOL.pushTasks, `http://127.0.0.1:${ports.pushTasks}`, true)
  const env = (pool: string): Record<string, string> => ({
    PREFECT_API_URL: prefect.apiUrl,
    PREFECT_API_AUTH_STRING: prefect.authString,
    PUSHPOOL_POOLS: pool,
    PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
    PUSHPOOL_PREFETCH_SECONDS: String(PREFETCH_S)
  })
  // The default timer mode (process): pickup, and figure 2's pushpool_reconcile_60s.
  const push = later(await startPushpool({ entry, name: 'push', port: ports.push, env: env(POOL.push) }))
  const worker = later(await startProcessWorker(prefect, POOL.worker))
  log('started `prefect worker start --type process` (default settings)')
  const deployments = {
    push: await helloDeployment(prefect, POOL.push, 'hello-push'),
    pushTasks: await helloDeployment(prefect, POOL.pushTasks, 'hello-push-tasks'),
    worker: await helloDeployment(prefect, POOL.worker, 'hello-worker')
  }

  if (only.has('pickup')) {
    noteLoad('pickup')
    log(`pickup latency: ${N.pickup} runs created due-now in each pool, side by side`)
    const pickup = await measurePickup({
      prefect, pushpoolDeploymentId: deployments.push, workerDeploymentId: deployments.worker,
      repetitions: N.pickup, workerPollSeconds: WORKER_POLL_S, log
    })
    const arrivals = webhookArrivals(readFileSync(push.logFile, 'utf8'))
    const automation: number[] = []
    const inPushpool: number[] = []
    for (const run of pickup.pushpoolRuns) {
      const at = arrivals.get(run.id)
      if (at === undefined) continue
      automation.push(at - run.scheduledAt)
      inPushpool.push(run.pendingAt - at)
    }
    const parts = await pendingParts(push, pickup.pushpoolRuns, arrivals)
    const pushS = summarize(pickup.pushpool)
    const workerS = summarize(pickup.worker)
    results.pickup_ms = {
      pushpool: { ...pushS, samples: pickup.pushpool },
      worker: { ...workerS, samples: pickup.worker },
      pushpool_split: {
        automation_to_webhook: summarize(automation),
        webhook_to_pending: { ...summarize(inPushpool), samples: inPushpool },
        parts: {
          webhook_to_received: summarize(parts.webhook_to_received),
          received_to_claimed: summarize(parts.received_to_claimed),
          claimed_to_pending: summarize(parts.claimed_to_pending)
        }
      },
      warmup: pickup.warmup,
      load_1m: summarize(pickup.load_1m)
    }
    results.pickup_ratio = Math.round(workerS.median / pushS.median * 10) / 10
  }

  if (only.has('scheduled')) await scheduledRuns(prefect, entry, emulator, push, env(POOL.pushTasks), ports.pushTasks, deployments, seed)
  else if (only.has('api')) results.api_calls_raw = await apiCalls(seed)
  await release(worker)
  await release(push)
  await release(emulator)
}

/**
 * Figure 2: a deployment schedule's runs in pushpool's two timer modes (each pushpool reconciled
 * every 60 s, Cloud Scheduler's minimum) and the worker's pool, side by side; the steady state,
 * then the first runs of a schedule added less than a tick before they are due.
 */
async function scheduledRuns (prefect: RealPrefect, entry: string, emulator: Emulator, push: PushpoolProcess,
  tasksEnv: Record<string, string>, tasksPort: number, deployments: { push: string, pushTasks: string, worker: string }, seed: StandInSeed): Promise<void> {
  const queue = await cloudTasksQueue(emulator)
  const invoker = 'pushpool-timers@bench.iam.gserviceaccount.com'
  const pushTasks = later(await startPushpool({
    entry,
    name: 'push-tasks',
    port: tasksPort,
    env: {
      ...tasksEnv,
      PUSHPOOL_TIMERS: 'cloud-tasks',
      PUSHPOOL_TASKS_QUEUE: queue,
      PUSHPOOL_TASKS_INVOKER: invoker,
      PUSHPOOL_TASKS_ENDPOINT: emulator.endpoint,
      PUSHPOOL_AUDIENCE: `http://127.0.0.1:${tasksPort}`,
      PUSHPOOL_GOOGLE_CERTS_URL: emulator.certsUrl
    }
  }))
  const prefectSettings = await lateAndSchedulerSettings(prefect)
  noteLoad('scheduled')
  log(`scheduled runs: reconcile every ${RECONCILE_S} s in ${POOL.push} (process timers) and ${POOL.pushTasks} (Cloud Tasks), beside the worker; ` +
    `Prefect's Late runs after ${prefectSettings.late_runs.after_seconds}, loop ${prefectSettings.late_runs.loop_seconds} s` +
    (prefectSettings.defaults ? ' (its defaults)' : ' (NOT its defaults)') + (only.has('api') ? '; the API-call counts run alongside' : ''))
  const timers = {
    process: startReconcileTimer(push, RECONCILE_S, err => { log(`  reconcile (${POOL.push}) failed: ${err.message}`) }),
    tasks: startReconcileTimer(pushTasks, RECONCILE_S, err => { log(`  reconcile (${POOL.pushTasks}) failed: ${err.message}`) })
  }
  const targets = [
    { label: 'pushpool_reconcile_60s', deploymentId: deployments.push, reconcileTicks: () => timers.process.ticks },
    { label: 'pushpool_cloud_tasks_60s', deploymentId: deployments.pushTasks, reconcileTicks: () => timers.tasks.ticks },
    { label: 'worker', deploymentId: deployments.worker }
  ]
  // Runs alongside, so its failure is caught here: left unawaited, a rejection would end the run.
  const api = only.has('api') ? apiCalls(seed).catch((err: Error) => { failed('api', err) }) : Promise.resolve(undefined)
  const steady = await measureSchedule({
    prefect, targets, repetitions: N.scheduled, intervalSeconds: N.scheduledEvery, leadSeconds: STEADY_LEAD_S, name: 'steady', log
  })
  const firstRuns: ScheduleResult[] = []
  for (let round = 1; round <= N.firstRunRounds; round++) {
    firstRuns.push(await measureSchedule({
      prefect, targets, repetitions: N.firstRuns, intervalSeconds: FIRST_RUNS_EVERY_S, leadSeconds: FIRST_RUNS_LEAD_S, name: `first-runs-${round}`, log
    }))
  }
  timers.process.stop()
  timers.tasks.stop()
  const tasksFired = emulator.taskDeliveries().filter(d => d.status === 200).length
  await release(pushTasks)

  const figure = (runs: ScheduledRun[], label: string): ScheduledFigure => {
    const mine = runs.filter(r => r.label === label)
    const via: Record<string, number> = {}
    for (const r of mine) via[r.via] = (via[r.via] ?? 0) + 1
    return { ...summarize(mine.map(r => r.delay_ms)), samples: mine.map(r => r.delay_ms), left_scheduled_via: via, runs: mine }
  }
  const allFirst = firstRuns.flatMap(r => r.runs)
  results.scheduled_delay_ms = {
    pushpool_reconcile_60s: figure(steady.runs, 'pushpool_reconcile_60s'),
    pushpool_cloud_tasks_60s: figure(steady.runs, 'pushpool_cloud_tasks_60s'),
    worker: figure(steady.runs, 'worker'),
    first_runs: {
      pushpool_reconcile_60s: figure(allFirst, 'pushpool_reconcile_60s'),
      pushpool_cloud_tasks_60s: figure(allFirst, 'pushpool_cloud_tasks_60s'),
      worker: figure(allFirst, 'worker'),
      schedules: firstRuns.map(r => ({ rrule: r.rrule, created_before_first_due_ms: r.created_before_first_due_ms })),
      schedule_added_s_before_first_due: FIRST_RUNS_LEAD_S,
      every_s: FIRST_RUNS_EVERY_S
    },
    load_1m: results.load_average.scheduled[0],
    settings: {
      runs_created_by: 'the scheduler service, from a deployment schedule added by updating the deployment (as `prefect deploy` does)',
      schedule: { rrule: steady.rrule, timezone: 'UTC' },
      steady_schedule_added_s_before_first_due: STEADY_LEAD_S,
      scheduler_created_all_runs_after_ms: steady.created_after_ms,
      scheduler_created_all_runs_before_first_due_ms: steady.created_before_first_due_ms,
      prefect: prefectSettings,
      pushpool_reconcile_every_s: RECONCILE_S,
      PUSHPOOL_PREFETCH_SECONDS: PREFETCH_S,
      PUSHPOOL_TIMER_HORIZON_SECONDS: 600,
      timer_modes: { pushpool_reconcile_60s: 'process (the default)', pushpool_cloud_tasks_60s: "cloud-tasks (the emulator's Cloud Tasks, OIDC to POST /v1/timers/fire)" },
      cloud_tasks_deliveries_answered_200: tasksFired,
      worker: 'defaults (PREFECT_WORKER_QUERY_SECONDS=10, PREFECT_WORKER_PREFETCH_SECONDS=10)'
    }
  }
  const raw = await api
  if (raw !== undefined) results.api_calls_raw = raw
}

/** A Cloud Tasks queue in the emulator, made through the real client as `gcloud tasks queues create` would. */
async function cloudTasksQueue (emulator: Emulator): Promise<string> {
  const { v2 } = await import('@google-cloud/tasks')
  const client = new v2.CloudTasksClient({ ...emulatorClientOptions(emulator.endpoint), projectId: 'bench' })
  const location = 'projects/bench/locations/us-central1'
  const queue = `${location}/queues/pushpool-timers`
  try {
    await client.createQueue({ parent: location, queue: { name: queue } })
  } finally {
    await client.close()
  }
  return queue
}

async function apiCalls (seed: StandInSeed): Promise<ApiCallsResult> {
  log(`API calls: a ${N.runSeconds} s run, reconcile every ${N.reconcileSeconds} s, ${N.api} runs of each kind side by side`)
  const result = await measureApiCalls({ seed, repetitions: N.api, runSeconds: N.runSeconds, reconcileSeconds: N.reconcileSeconds, workerPollSeconds: 5, log })
  const figure = (runs: Array<Record<string, number>>): { median: number, min: number, max: number, n: number, by_method: Record<string, number> } => {
    const s = summarize(runs.map(total))
    const byMethod: Record<string, number> = {}
    for (const method of new Set(runs.flatMap(r => Object.keys(r)))) byMethod[method] = summarize(runs.map(r => r[method] ?? 0)).median
    return { ...s, by_method: byMethod }
  }
  results.api_calls_per_run = {
    reuse: summarize(result.reuse.map(total)).median,
    per_run: summarize(result.per_run.map(total)).median,
    worker: summarize(result.worker.map(total)).median,
    detail: {
      reuse: figure(result.reuse),
      per_run: figure(result.per_run),
      worker: figure(result.worker),
      reuse_first_run_on_instance: figure(result.reuse_first_on_instance)
    },
    run_seconds: N.runSeconds,
    reconcile_every_s: N.reconcileSeconds,
    worker_is: '**modelled**: prefect-gcp 0.6.22 cloud-run-v2 call sequence replayed with @google-cloud/run against the emulator (bench/worker-model.ts)'
  }
  return result
}

// ---------------------------------------------------------------- cost

async function standInCost (peers: LoopbackPeers, entry: string, seed: StandInSeed): Promise<void> {
  noteLoad('cost')
  log(`dispatch cost against the in-memory Prefect stand-in: ${N.costReps} × (${N.sequential} one at a time + ${N.throughputRuns} with ${N.concurrency} in flight)`)
  const pushpool = later(await startPushpool({ entry, name: 'cost', env: { PREFECT_API_URL: peers.prefectApiUrl, PUSHPOOL_POOLS: seed.workPool.name, PUSHPOOL_CLOUD_RUN_ENDPOINT: peers.cloudRunEndpoint } }))
  const callsBefore = await peers.prefectCalls()
  const cost = await measureCost({
    pushpool, createFlowRuns: n => peers.createFlowRuns(n), warmup: 50, repetitions: N.costReps,
    sequential: N.sequential, throughputRuns: N.throughputRuns, concurrency: N.concurrency, log, label: 'stand-in'
  })
  const callsAfter = await peers.prefectCalls()
  const dispatches = 50 + N.costReps * (N.sequential + N.throughputRuns)
  const perDispatch: Record<string, number> = {}
  for (const [route, n] of Object.entries(callsAfter)) {
    if (route.includes('_bench')) continue
    const d = (n - (callsBefore[route] ?? 0)) / dispatches
    if (d >= 0.005) perDispatch[route] = Math.round(d * 100) / 100
  }
  await release(pushpool)

  // The same, with the SQLite file on tmpfs: no fsync per commit (Cloud Run's filesystem is in memory).
  let tmpfs: StoreVariantCost | null = null
  if (existsSync('/dev/shm')) {
    const storePath = join('/dev/shm', `pushpool-bench-${process.pid}.db`)
    tmpfs = await costWithStore(peers, entry, seed, 'with the store on tmpfs (/dev/shm)', 'cost-tmpfs', { storePath })
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${storePath}${suffix}`, { force: true })
  }
  // And with the deployed store, PostgreSQL (a fresh database on the loopback server npm test uses), where each write is a round trip.
  let onPostgres: StoreVariantCost | null = null
  const postgres = await provideTestPostgres(REPO, process.env)
  if (postgres.url === null) {
    log(`  no PostgreSQL figure: ${postgres.describe}`)
  } else {
    const drops: Array<() => unknown> = []
    try {
      const url = await freshDatabase({ teardown: drop => { drops.push(drop) } }, postgres.url)
      onPostgres = await costWithStore(peers, entry, seed, 'with the PostgreSQL store (loopback)', 'cost-postgres', { env: { PUSHPOOL_STORE_URL: url } })
    } finally {
      for (const drop of drops) await drop()
      await postgres.stop()
    }
  }
  results.dispatch_cpu_ms = {
    ...summarize(cost.cpu_ms_sequential),
    samples: cost.cpu_ms_sequential,
    user: summarize(cost.cpu_ms_sequential_user),
    system: summarize(cost.cpu_ms_sequential_system),
    under_load: summarize(cost.cpu_ms_loaded),
    latency_ms: summarize(cost.latency_ms_sequential),
    prefect_calls_per_dispatch: perDispatch,
    ...(tmpfs === null ? {} : { store_on_tmpfs: tmpfs }),
    ...(onPostgres === null ? {} : { store_postgres: onPostgres })
  }
  const throughput = summarize(cost.throughput_per_s)
  results.throughput_per_s = throughput.median
  results.throughput = {
    stand_in: { ...throughput, samples: cost.throughput_per_s, concurrency: N.concurrency, runs_per_repetition: N.throughputRuns, pushpool_cpu_share_of_one_core: summarize(cost.cpu_utilisation) },
    failures: cost.failures
  }
}

async function realCost (prefect: RealPrefect, entry: string, deploymentId: string): Promise<void> {
  noteLoad('real')
  log(`dispatch cost against the real Prefect server (reference): ${N.realReps} × (${N.realSequential} one at a time + ${N.realThroughput} with ${N.realConcurrency} in flight)`)
  const emulator = later(await startEmulator({ executions: 'hold' }))
  const pushpool = later(await startPushpool({ entry, name: 'real', env: { PREFECT_API_URL: prefect.apiUrl, PREFECT_API_AUTH_STRING: prefect.authString, PUSHPOOL_POOLS: POOL.cost, PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint } }))
  // A SQLite-backed server answers 503 ("database is locked") while it catches up; wait it out.
  const createOne = async (): Promise<string> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await prefect.fixtures.createFlowRun(deploymentId)).id
      } catch (err) {
        if ((err as { status?: number }).status !== 503 || attempt >= 10) throw err
        await new Promise(resolve => setTimeout(resolve, 2000))
      }
    }
  }
  const create = async (n: number): Promise<string[]> => {
    const ids: string[] = []
    for (let i = 0; i < n; i++) ids.push(await createOne())
    return ids
  }
  const cost = await measureCost({
    pushpool, createFlowRuns: create, warmup: 5, repetitions: N.realReps, sequential: N.realSequential,
    throughputRuns: N.realThroughput, concurrency: N.realConcurrency, log, label: 'real Prefect'
  })
  await release(pushpool)
  await release(emulator)
  results.real_prefect = {
    dispatch_cpu_ms: { ...summarize(cost.cpu_ms_sequential), samples: cost.cpu_ms_sequential },
    dispatch_latency_ms: summarize(cost.latency_ms_sequential),
    throughput_per_s: { ...summarize(cost.throughput_per_s), samples: cost.throughput_per_s, concurrency: N.realConcurrency, runs_per_repetition: N.realThroughput },
    failures: cost.failures
  }
}

/** The sequential and throughput figures again with another store under pushpool (a path, or PUSHPOOL_STORE_URL in `env`). */
async function costWithStore (peers: LoopbackPeers, entry: string, seed: StandInSeed, label: string, name: string,
  store: { storePath?: string, env?: Record<string, string> }): Promise<StoreVariantCost> {
  log(`  again ${label}: ${N.costReps} × (${N.sequential} one at a time + ${N.throughputRuns} with ${N.concurrency} in flight)`)
  const pushpool = later(await startPushpool({
    entry, name, storePath: store.storePath,
    env: { PREFECT_API_URL: peers.prefectApiUrl, PUSHPOOL_POOLS: seed.workPool.name, PUSHPOOL_CLOUD_RUN_ENDPOINT: peers.cloudRunEndpoint, ...store.env }
  }))
  const cost = await measureCost({
    pushpool, createFlowRuns: n => peers.createFlowRuns(n), warmup: 50, repetitions: N.costReps,
    sequential: N.sequential, throughputRuns: N.throughputRuns, concurrency: N.concurrency, log, label: `stand-in, ${label}`
  })
  await release(pushpool)
  return {
    cpu_ms: summarize(cost.cpu_ms_sequential),
    latency_ms: summarize(cost.latency_ms_sequential),
    throughput_per_s: summarize(cost.throughput_per_s),
    cpu_ms_loaded: summarize(cost.cpu_ms_loaded)
  }
}

async function profileDispatch (peers: LoopbackPeers, entry: string, seed: StandInSeed): Promise<void> {
  noteLoad('profile')
  const dir = join(TMP, 'profiles', 'dispatch')
  mkdirSync(dir, { recursive: true })
  log(`profiling dispatch (node --cpu-prof): ${N.profileRuns} one at a time, then ${N.profileRuns} with ${N.concurrency} in flight`)
  const pushpool = later(await startPushpool({ entry, name: 'profile', nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir], env: { PREFECT_API_URL: peers.prefectApiUrl, PUSHPOOL_POOLS: seed.workPool.name, PUSHPOOL_CLOUD_RUN_ENDPOINT: peers.cloudRunEndpoint } }))
  await sendWebhooks(pushpool, await peers.createFlowRuns(50), 1)
  const since = (): number => performance.now() - pushpool.spawnedAt
  const seqFrom = since()
  await sendWebhooks(pushpool, await peers.createFlowRuns(N.profileRuns), 1)
  const seqTo = since()
  const loadIds = await peers.createFlowRuns(N.profileRuns)
  const loadFrom = since()
  await sendWebhooks(pushpool, loadIds, N.concurrency)
  const loadTo = since()
  await pushpool.stop()
  const file = newestProfile(dir)
  results.profiles = {
    ...results.profiles,
    dispatch_one_at_a_time: { dispatches: N.profileRuns, ...summarizeProfile(file, 15, seqTo, seqFrom) },
    dispatch_loaded: { dispatches: N.profileRuns, concurrency: N.concurrency, ...summarizeProfile(file, 15, loadTo, loadFrom) }
  }
}

async function coldStart (peers: LoopbackPeers, entry: string, seed: StandInSeed): Promise<void> {
  noteLoad('cold')
  const variants = [
    { name: 'artifact', entry, env: imageEnv },
    { name: 'artifact_without_compile_cache', entry, env: { ...imageEnv, NODE_DISABLE_COMPILE_CACHE: '1' } },
    { name: 'src_server_ts', entry: 'src/server.ts' }
  ]
  log(`cold start: ${N.starts} rounds of ${variants.map(v => v.name).join(', ')}, one start of each per round`)
  const pool = seed.workPool.name
  const [artifact, ...others] = await measureColdStarts({ variants, starts: N.starts, peers, pool, log })
  const dir = join(TMP, 'profiles', 'cold')
  mkdirSync(dir, { recursive: true })
  const profiled = later(await startPushpool({ entry, name: 'cold-profile', nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir], env: { ...imageEnv, PREFECT_API_URL: peers.prefectApiUrl, PUSHPOOL_POOLS: pool, PUSHPOOL_CLOUD_RUN_ENDPOINT: peers.cloudRunEndpoint } }))
  const readyAt = profiled.readyMs
  await sendWebhooks(profiled, await peers.createFlowRuns(1), 1)
  const firstAt = performance.now() - profiled.spawnedAt
  await profiled.stop()
  const file = newestProfile(dir)
  results.profiles = {
    ...results.profiles,
    cold_start_until_ready: { ready_ms: readyAt, ...summarizeProfile(file, 15, readyAt) },
    cold_start_first_dispatch: { from_ms: readyAt, to_ms: firstAt, ...summarizeProfile(file, 15, firstAt, readyAt) }
  }
  const sum = (values: number[]): ReturnType<typeof summarize> & { samples: number[] } => ({ ...summarize(values), samples: values.map(v => Math.round(v)) })
  const figure = (r: ColdStartResult, wall: (r: ColdStartResult) => number[], cpu: (r: ColdStartResult) => number[]): ColdStartFigure =>
    ({ ...sum(wall(r)), cpu_ms: summarize(cpu(r)), load_1m: { ...summarize(r.load_1m), samples: r.load_1m }, entry: r.entry, env: r.env })
  const ready = (r: ColdStartResult): ColdStartFigure => figure(r, x => x.ready_ms, x => x.cpu_ready_ms)
  const first = (r: ColdStartResult): ColdStartFigure => figure(r, x => x.first_dispatch_ms, x => x.cpu_first_dispatch_ms)
  results.cold_start_ready_ms = { ...ready(artifact), variants: Object.fromEntries(others.map(r => [r.name, ready(r)])) }
  results.cold_start_first_dispatch_ms = { ...first(artifact), variants: Object.fromEntries(others.map(r => [r.name, first(r)])) }
  results.cold_start_rss_ready_mb = Object.fromEntries([artifact, ...others].map(r => [r.name, summarize(r.rss_ready_mb)]))
  log('  what start-up loads, and what each package costs alone')
  results.module_cost = measureModuleCost()
}

async function burst (entry: string, seed: StandInSeed): Promise<void> {
  noteLoad('burst')
  log(`burst: ${N.burstRuns} runs at once; RunJob +100 ms, RESOURCE_EXHAUSTED above ${N.burstPerMinute}/min; reconcile every 10 s, PUSHPOOL_RETRY_DELAY_SECONDS=5`)
  const standIn = later(await startPrefectStandIn(seed))
  const emulator = later(await startEmulator({ executions: 'hold' }))
  const pushpool = later(await startPushpool({
    entry,
    name: 'burst',
    env: { PREFECT_API_URL: standIn.apiUrl, PUSHPOOL_POOLS: seed.workPool.name, PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint, PUSHPOOL_RETRY_DELAY_SECONDS: '5' }
  }))
  const result = await measureBurst({
    emulator, pushpool, createFlowRuns: async n => standIn.createFlowRuns(n), announce: true,
    runs: N.burstRuns, perMinute: N.burstPerMinute, runJobLatencyMs: 100, reconcileSeconds: 10,
    settleSeconds: quick ? 10 : 30, limitSeconds: N.burstLimitS, log
  })
  await release(pushpool)
  await release(emulator)
  await release(standIn)
  results.burst = {
    ...result,
    quota_per_minute: N.burstPerMinute,
    runjob_latency_ms: 100,
    reconcile_every_s: 10,
    retry_delay_s: 5,
    /** The quota alone allows no faster: the last runs get their slot a full window later per PER_MINUTE runs. */
    quota_bound_s: Math.max(0, Math.ceil(N.burstRuns / N.burstPerMinute) - 1) * 60
  }
}

try {
  await main()
} finally {
  await cleanupAll()
}
