// Exactly once across instances, with real processes: two pushpool servers share one PostgreSQL
// database and one Cloud Run emulator, both receive every webhook several times at once and both
// reconcile at the same time; one is killed while it holds leases and the survivors race to take
// over; a pool's concurrency limit holds across both. Each flow run must get one dispatch and one
// execution.
import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { prefectServer } from '../harness/prefect.ts'
import { ON_ITS_WAY } from '../harness/scene.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator, type Emulator } from '../../src/emulator/index.ts'
import { FINAL_STATES, type DispatchState } from '../../src/store/transitions.ts'
import { servingEnv, webhookHeaders, webhookPayload, adminHeaders } from '../helper.ts'
import { freshDatabase, NO_POSTGRES, postgresTestUrl } from '../store/postgres-database.ts'
import { parentEnv, startService, type ServiceProcess } from './service-process.ts'
import type { TestPrefectServer } from '../harness/prefect.ts'

const RUNS = 20
const ROUNDS = 3
/** How long reconcile may take to finish dispatches whose Prefect calls timed out under load. */
const SETTLE_MS = 60_000
const KILLED_RUNS = 8
/** Long enough for the killed instance's leases to run out (a RunJob's 20 s and a margin), under load. */
const KILL_SETTLE_MS = 150_000
/**
 * The runs are due this far ahead, inside the instances' prefetch window, so they are launched at
 * once; yet Prefect's late-runs service (tuned to 5 s for the tests) does not restate them Late
 * before the test is over. A Late restatement of a run whose dispatch still waits supersedes that
 * dispatch with a new one, by design: on a machine slow enough for it, "one dispatch per run"
 * would then count two records for one run, and its replies name both.
 */
const DUE_AHEAD_MS = 300_000
const PREFETCH_SECONDS = 600

interface DispatchView { id: string, flow_run_id: string, state: DispatchState, execution_name: string | null }

const settled = (d: DispatchView): boolean => d.state === 'launched' || FINAL_STATES.includes(d.state)

const executionsOf = (emulator: Emulator, flowRunId: string): string[] => emulator.executions()
  .filter(e => (e.template?.containers?.[0]?.env ?? []).some(v => v.name === 'PREFECT__FLOW_RUN_ID' && v.value === flowRunId))
  .map(e => e.name)

async function post (instance: ServiceProcess, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number, json: any }> {
  const res = await fetch(`${instance.url}${path}`, { method: 'POST', headers, body })
  return { status: res.status, json: await res.json() }
}

async function listDispatches (instance: ServiceProcess, pool: string): Promise<DispatchView[]> {
  const res = await fetch(`${instance.url}/v1/dispatches?pool=${pool}&limit=200`, { headers: adminHeaders() })
  return (await res.json() as { items: DispatchView[] }).items
}

async function dispatchDetail (instance: ServiceProcess, id: string): Promise<unknown> {
  const res = await fetch(`${instance.url}/v1/dispatches/${id}`, { headers: adminHeaders() })
  const { dispatch, events } = await res.json() as { dispatch: unknown, events: unknown }
  return { dispatch, events }
}

const serverUrl = postgresTestUrl()

interface Cluster {
  prefect: PrefectFixtures
  emulator: Emulator
  pool: string
  deploymentId: string
  /** Creates a flow run of the deployment, Scheduled DUE_AHEAD_MS ahead. */
  flowRun: () => Promise<string>
  /** Starts one more instance on the shared database. */
  start: () => Promise<ServiceProcess>
}

async function cluster (t: Test, peers: TestPrefectServer, url: string, options: { concurrencyLimit?: number } = {}): Promise<Cluster> {
  const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
  const emulator = await startEmulator({ executions: 'hold' })
  t.teardown(() => emulator.close())
  const { pool, deploymentId } = await prefect.servedPool('pool', 'proj-test', { concurrencyLimit: options.concurrencyLimit })
  const env = {
    ...parentEnv(),
    ...servingEnv({ storeUrl: await freshDatabase(t, url), prefect: peers, pool, cloudRunEndpoint: emulator.endpoint }),
    // Due at once, so the settling below need not wait out the production back-off.
    PUSHPOOL_RETRY_DELAY_SECONDS: '0',
    PUSHPOOL_PREFETCH_SECONDS: String(PREFETCH_SECONDS),
    LOG_LEVEL: 'warn'
  }
  const started: ServiceProcess[] = []
  t.teardown(() => { if (t.passing()) return; for (const [i, instance] of started.entries()) t.comment(`instance ${i}:\n${instance.output()}`) })
  const start = async (): Promise<ServiceProcess> => {
    const instance = await startService(t, { args: ['src/server.ts'], env })
    started.push(instance)
    return instance
  }
  const flowRun = async (): Promise<string> => (await prefect.createFlowRun(deploymentId, {
    state: { type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: new Date(Date.now() + DUE_AHEAD_MS).toISOString() } }
  })).id
  return { prefect, emulator, pool, deploymentId, flowRun, start }
}

/**
 * Reconciles on every instance at once, again and again, until each of `runs` runs has a dispatch
 * and every dispatch is launched or final. A run whose webhook was lost has none until reconcile
 * discovers it.
 */
async function settle (instances: ServiceProcess[], pool: string, runs: number, withinMs: number): Promise<DispatchView[]> {
  let dispatches = await listDispatches(instances[0], pool)
  const settleBy = Date.now() + withinMs
  while ((dispatches.length < runs || !dispatches.every(settled)) && Date.now() < settleBy) {
    await sleep(500)
    await Promise.all(instances.map(instance => post(instance, '/v1/reconcile', adminHeaders())))
    dispatches = await listDispatches(instances[0], pool)
  }
  return dispatches
}

async function oneExecutionEach (t: Test, c: Cluster, instance: ServiceProcess, runs: string[], dispatches: DispatchView[]): Promise<void> {
  t.same(dispatches.map(d => d.flow_run_id).sort(), [...runs].sort(), 'one dispatch per run in the shared ledger')
  t.same(dispatches.filter(d => d.state !== 'launched'), [], 'every dispatch launched')
  for (const run of runs) {
    const executions = executionsOf(c.emulator, run)
    t.equal(executions.length, 1, `${run}: one execution`)
    t.equal(dispatches.find(d => d.flow_run_id === run)?.execution_name, executions[0], `${run}: the ledger names it`)
    const mine = dispatches.filter(d => d.flow_run_id === run)
    // When exactly-once breaks, the event logs of the run's dispatches say how.
    if (mine.length !== 1 || executions.length !== 1) {
      for (const d of mine) t.comment(`${run}: dispatch ${JSON.stringify(await dispatchDetail(instance, d.id))}`)
    }
  }
}

if (serverUrl === undefined) {
  t.comment(NO_POSTGRES)
} else {
  t.test('two instances, the same webhooks concurrently, reconcile on both: one dispatch and one execution per run', async t => {
    const c = await cluster(t, await prefectServer(), serverUrl)
    // Started together on an empty database: both run the migrations at once.
    const instances = await Promise.all([c.start(), c.start()])

    const runs: string[] = []
    for (let i = 0; i < RUNS; i++) runs.push(await c.flowRun())
    const started = Date.now()

    const webhooks: Array<{ run: string, status: number, json: any }> = []
    const reconciles: Array<{ status: number, json: any }> = []
    for (let round = 0; round < ROUNDS; round++) {
      const deliveries = runs.flatMap(run => instances.map(async instance =>
        ({ run, ...await post(instance, '/v1/webhooks/prefect', webhookHeaders(), webhookPayload(run)) })))
      // A webhook, a retried delivery and the scheduler's reconcile all racing for the same runs.
      const passes = instances.map(instance => post(instance, '/v1/reconcile', adminHeaders()))
      webhooks.push(...await Promise.all(deliveries))
      reconciles.push(...await Promise.all(passes))
    }

    t.comment(`${RUNS} runs × ${instances.length} instances × ${ROUNDS} rounds delivered in ${Date.now() - started} ms`)

    t.same(reconciles.map(r => r.status), reconciles.map(() => 200), 'every reconcile pass answered 200')
    // Under load a delivery may also find Prefect too slow to read the run: 503 PREFECT_UNAVAILABLE,
    // with nothing recorded (reconcile discovers the run). Anything else is a defect.
    const odd = webhooks.filter(w => !(w.status === 202 || (w.status === 200 && w.json.status === 'duplicate') ||
      (w.status === 503 && w.json.code === 'PREFECT_UNAVAILABLE')))
    t.same(odd, [], 'each delivery started the dispatch, was told it is a duplicate, or was refused while Prefect was slow')
    const unavailable = webhooks.filter(w => w.status === 503).length
    if (unavailable > 0) t.comment(`${unavailable} deliveries found Prefect too slow to answer`)
    for (const run of runs) {
      const replies = webhooks.filter(w => w.run === run && w.status !== 503)
      t.ok(replies.filter(w => w.status === 202).length <= 1, `${run}: at most one delivery started it`)
      t.ok(new Set(replies.map(w => w.json.dispatch_id)).size <= 1, `${run}: every reply names the same dispatch`)
    }

    // A Prefect call that timed out under this load leaves its dispatch `retrying`, for reconcile to
    // finish: keep reconciling on both instances at once until nothing is left in flight.
    const dispatches = await settle(instances, c.pool, runs.length, SETTLE_MS)
    t.comment(`settled in ${Date.now() - started} ms`)
    await oneExecutionEach(t, c, instances[1], runs, dispatches)
  })

  t.test('an instance killed while it holds leases: the survivor and its restart reconcile at once, and each run gets one execution', async t => {
    const c = await cluster(t, await prefectServer(), serverUrl)
    const [doomed, survivor] = await Promise.all([c.start(), c.start()])
    const runs: string[] = []
    for (let i = 0; i < KILLED_RUNS; i++) runs.push(await c.flowRun())
    // Every RunJob takes a while, so the doomed instance dies with launches in flight: Cloud Run
    // may create their executions after their caller is gone.
    c.emulator.addFault({ method: 'RunJob', latencyMs: 1500 })
    const deliveries = Promise.allSettled(runs.map(run => post(doomed, '/v1/webhooks/prefect', webhookHeaders(), webhookPayload(run))))
    // Killed once its drives are under way: a second after its first dispatch is recorded (on a
    // loaded machine reading the runs from Prefect alone can take longer than that).
    for (const giveUp = Date.now() + 30_000; (await listDispatches(survivor, c.pool)).length === 0 && Date.now() < giveUp;) await sleep(100)
    await sleep(1000)
    await doomed.kill()
    await deliveries
    c.emulator.clearFaults()
    const leased = (await listDispatches(survivor, c.pool)).filter(d => !settled(d))
    t.comment(`${leased.length} of ${runs.length} dispatches were left on their way by the killed instance`)

    // The killed instance comes back while the survivor reconciles: both race for the same dispatches.
    const restarted = await c.start()
    const dispatches = await settle([survivor, restarted], c.pool, runs.length, KILL_SETTLE_MS)
    await oneExecutionEach(t, c, survivor, runs, dispatches)
    const events = await Promise.all(dispatches.map(async d => (await dispatchDetail(survivor, d.id) as { events: Array<{ type: string }> }).events))
    t.ok(leased.length === 0 || events.some(list => list.some(e => e.type === 'lease_taken_over')),
      'a dispatch left on its way was taken over once its lease ran out')
  })

  t.test('a pool\'s concurrency limit holds across instances', async t => {
    const c = await cluster(t, await prefectServer(), serverUrl, { concurrencyLimit: 2 })
    const instances = await Promise.all([c.start(), c.start()])
    const runs: string[] = []
    for (let i = 0; i < 6; i++) runs.push(await c.flowRun())
    const active = async (): Promise<number> => (await Promise.all(runs.map(run => c.prefect.readFlowRun(run))))
      .filter(run => run.state?.type === 'PENDING' || run.state?.type === 'RUNNING').length
    const executions = (): number => runs.reduce((n, run) => n + executionsOf(c.emulator, run).length, 0)
    // Every run delivered to both instances at once: each instance alone would admit two.
    await Promise.all(runs.flatMap(run => instances.map(instance => post(instance, '/v1/webhooks/prefect', webhookHeaders(), webhookPayload(run)))))
    // Admitted drives pass the limit's lock one at a time, so under load the second can outlast the
    // webhook's deadline and still be launching after the first reconcile; a Pending proposal that
    // timed out leaves its dispatch deferred (due again at once here). Reconcile on both instances
    // until every run has a dispatch, none is on its way, and two are launched, counting the active
    // runs and the executions at every look: an over-limit launch at any moment still fails below.
    let most = { active: 0, executions: 0 }
    let dispatches: DispatchView[] = []
    for (const giveUp = Date.now() + SETTLE_MS; ;) {
      await Promise.all(instances.map(instance => post(instance, '/v1/reconcile', adminHeaders())))
      dispatches = await listDispatches(instances[0], c.pool)
      most = { active: Math.max(most.active, await active()), executions: Math.max(most.executions, executions()) }
      const atRest = dispatches.length === runs.length && dispatches.every(d => !ON_ITS_WAY.includes(d.state)) &&
        dispatches.filter(d => d.state === 'launched').length === 2
      if (atRest || Date.now() > giveUp) break
      await sleep(500)
    }
    t.ok(most.active <= 2 && most.executions <= 2, `never more than two active nor two executions at any look (at most ${JSON.stringify(most)})`)
    t.equal(await active(), 2, 'two runs active, as the limit says')
    t.equal(executions(), 2, 'two executions')
    t.same(dispatches.map(d => d.state).sort(), ['deferred', 'deferred', 'deferred', 'deferred', 'launched', 'launched'],
      'one dispatch per run: two launched, four waiting for a slot')
  })
}
