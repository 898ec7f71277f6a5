// Work pool concurrency limits for pushed runs: Prefect enforces them only for polling workers.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { scene, executionsOf, settledDispatch, ON_ITS_WAY, type Scene } from '../harness/scene.ts'
import { pendingMessage } from '../../src/dispatch/decisions.ts'
import type { DispatchState } from '../../src/store/transitions.ts'
import type { WorkQueue } from '../../src/prefect/types.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { adminHeaders } from '../helper.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

const LIMIT = 2
/** How long the pool may take to come to rest on a loaded machine (a postponed claim waits 30 s). */
const SETTLE_MS = 90_000
/** A dispatch in one of these states holds one of the pool's slots. */
const HOLDS_A_SLOT = ['claimed', 'launching', 'retrying', 'launched']

t.test('a pool with limit 2 and 5 due runs never has more than 2 active; the rest follow as slots free', async t => {
  const s = await scene(t, prefect, peers, emulator, { concurrencyLimit: LIMIT })
  const runs = await Promise.all(Array.from({ length: 5 }, () => s.flowRun()))
  const active = async (): Promise<number> => {
    const states = await Promise.all(runs.map(async id => (await prefect.readFlowRun(id)).state?.type))
    return states.filter(type => type === 'PENDING' || type === 'RUNNING').length
  }
  const ledger = async (): Promise<Array<{ flow_run_id: string, state: string }>> =>
    (await s.app.inject({ method: 'GET', url: `/v1/dispatches?pool=${s.pool}&limit=200`, headers: adminHeaders() })).json().items
  const count = (dispatches: Array<{ state: string }>, state: string): number => dispatches.filter(d => d.state === state).length
  /** The most runs seen active at once, at any look while the pool was settling. */
  let mostActive = 0
  /**
   * Admitted drives pass the limit's lock one at a time, and a limit-recheck timer may take a freed
   * slot just before a reconcile (which then finds that dispatch busy and returns): on a loaded
   * machine a webhook or a reconcile can answer while a launch is still in flight. Reconcile again
   * until no dispatch is on its way and `done` holds, counting the active runs at every look.
   */
  const settle = async (done: (dispatches: Array<{ flow_run_id: string, state: string }>) => boolean): Promise<void> => {
    let dispatches = await ledger()
    for (const giveUp = Date.now() + SETTLE_MS; ;) {
      mostActive = Math.max(mostActive, await active())
      if ((dispatches.every(d => !ON_ITS_WAY.includes(d.state as DispatchState)) && done(dispatches)) || Date.now() > giveUp) return
      await sleep(500)
      await s.reconcile()
      dispatches = await ledger()
    }
  }

  const replies = await Promise.all(runs.map(id => s.webhook(id)))
  t.same(replies.map(r => r.statusCode), runs.map(() => 202), 'every run accepted')
  // Two launched and three deferred, unless a launch outlasted the webhook's deadline (claimed,
  // launching) or a Pending proposal timed out (deferred): never more than two took a slot.
  t.ok(replies.filter(r => HOLDS_A_SLOT.includes(r.json().state)).length <= LIMIT,
    `at most two replies took a slot: ${replies.map(r => r.json().state as string).join(', ')}`)
  // Every run has a dispatch (a held run that Prefect restates Late may have its waiting dispatch
  // superseded by a new one, by design: the old record stays, skipped).
  await settle(dispatches => new Set(dispatches.map(d => d.flow_run_id)).size === runs.length && count(dispatches, 'launched') === LIMIT)
  const first = await ledger()
  t.equal(count(first, 'launched'), 2, 'two launched')
  t.equal(count(first, 'deferred'), 3, 'three wait for a slot')
  t.equal(await active(), 2)
  t.equal(runs.filter(id => executionsOf(emulator, id).length === 1).length, 2, 'two executions')
  t.equal((await s.reconcile()).driven, 0, 'no slot, nothing driven')
  t.equal(await active(), 2)

  // One run finishes: one slot frees, one more run goes (taken by reconcile or by a recheck timer).
  const done = runs.find(id => executionsOf(emulator, id).length === 1) ?? ''
  await prefect.setState(done, { type: 'COMPLETED', name: 'Completed' }, true)
  emulator.finishExecution(executionsOf(emulator, done)[0].name ?? '', { exitCode: 0 })
  await s.reconcile()
  await settle(dispatches => count(dispatches, 'succeeded') === 1 && count(dispatches, 'launched') === LIMIT)
  t.equal(await active(), 2, 'still at most two active')
  t.equal(runs.filter(id => executionsOf(emulator, id).length === 1).length, 3)
  t.ok(mostActive <= LIMIT, `never more than two active at any look (at most ${mostActive})`)

  const pools = await s.app.inject({ method: 'GET', url: '/v1/pools', headers: adminHeaders() })
  const summary = pools.json().pools[0]
  t.equal(summary.name, s.pool)
  t.equal(summary.counts.launched, 2)
  t.equal(summary.counts.succeeded, 1)
  t.equal(summary.counts.deferred, 2)
  t.ok(summary.launch_latency_ms.median >= 0)
})

t.test('a run its own lost claim left Pending is not held back by its own slot', async t => {
  const s = await scene(t, prefect, peers, emulator, { concurrencyLimit: 1 })
  const flowRunId = await s.flowRun()
  const scheduled = (await prefect.readFlowRun(flowRunId)).state!
  // What a claim leaves when Prefect applied Pending but its reply was lost: the dispatch waits
  // (deferred) while the run is Pending by it, the one active run of a pool with one slot.
  const { dispatch } = await s.app.store.createDispatch({
    key: `${flowRunId}:${scheduled.id}`, flowRunId, flowRunName: null, pool: s.pool, deploymentId: s.deploymentId,
    state: 'deferred', dueAt: new Date().toISOString(), receivedAt: new Date().toISOString(), detail: 'webhook (test: its Pending reply was lost)'
  })
  await prefect.setState(flowRunId, { type: 'PENDING', name: 'Pending', message: pendingMessage(dispatch) })
  t.equal((await prefect.readFlowRun(flowRunId)).state?.type, 'PENDING', 'the pool\'s one slot is the run\'s own')
  await s.reconcile()
  await settledDispatch(s.app, dispatch.id)
  const after = await s.detail(dispatch.id)
  t.equal(after.dispatch.state, 'launched', `launched, not held for its own slot: ${after.events.map((e: { detail: string }) => e.detail).join(' | ')}`)
  t.equal(executionsOf(emulator, flowRunId).length, 1, 'one execution')
})

/** The pool's default queue, as Prefect has it. */
async function defaultQueue (pool: string): Promise<WorkQueue> {
  const queues = await prefect.request<WorkQueue[]>('POST', `/work_pools/${pool}/queues/filter`, {})
  return queues.find(queue => queue.name === 'default')!
}

/** A dispatch's details once one of its events matches, read again for at most a minute. */
async function detailOnceEvent (s: Scene, dispatchId: string, pattern: RegExp): Promise<{ state: string, details: string[] }> {
  let details: string[] = []
  let state = ''
  for (const giveUp = Date.now() + 60_000; Date.now() < giveUp; await sleep(250)) {
    const detail = await s.detail(dispatchId)
    state = detail.dispatch.state
    details = detail.events.map((e: { detail: string }) => e.detail)
    if (details.some(d => pattern.test(d))) break
  }
  return { state, details }
}

t.test('a paused work queue holds its runs back', async t => {
  const s = await scene(t, prefect, peers, emulator)
  const queue = await defaultQueue(s.pool)
  await prefect.request('PATCH', `/work_queues/${queue.id}`, { is_paused: true })
  const flowRunId = await s.flowRun()
  const reply = await s.webhook(flowRunId)
  t.equal(reply.statusCode, 202)
  const held = await detailOnceEvent(s, reply.json().dispatch_id, /work queue default is paused/)
  t.equal(held.state, 'deferred', `held back: ${held.details.join(' | ')}`)
  t.equal(executionsOf(emulator, flowRunId).length, 0, 'nothing launched')
  t.equal((await prefect.readFlowRun(flowRunId)).state?.type, 'SCHEDULED', 'the run still waits')
})

t.test('a work queue\'s own concurrency limit is kept, with none on the pool', async t => {
  const s = await scene(t, prefect, peers, emulator)
  const queue = await defaultQueue(s.pool)
  await prefect.request('PATCH', `/work_queues/${queue.id}`, { concurrency_limit: 1 })
  const first = await s.flowRun()
  const launched = await settledDispatch(s.app, (await s.webhook(first)).json().dispatch_id)
  t.equal(launched.state, 'launched', 'the first run takes the queue\'s one slot')
  const second = await s.flowRun()
  const reply = await s.webhook(second)
  const held = await detailOnceEvent(s, reply.json().dispatch_id, /work queue default is at its concurrency limit \(1\/1\)/)
  t.equal(held.state, 'deferred', `the second waits: ${held.details.join(' | ')}`)
  t.equal(executionsOf(emulator, second).length, 0, 'the second is not launched')
})
