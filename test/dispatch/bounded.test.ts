// Bounded work per instance: at most PUSHPOOL_MAX_IN_FLIGHT drives at once. A burst beyond it is
// recorded (nothing lost: Prefect never retries a webhook) and driven here as drives end, with a
// timer behind each in case the process dies first.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { adminHeaders } from '../helper.ts'
import { scene, executionsOf } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { recordingProxy, refuseFirst } from '../reliability/raw-http.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const emulator = await startEmulator({ executions: 'hold' })
t.teardown(() => emulator.close())

t.test('a burst beyond the bound is recorded, then driven as drives end, never more than the bound at once', async t => {
  const s = await scene(t, prefect, peers, emulator, { env: { PUSHPOOL_MAX_IN_FLIGHT: '2' } })
  // Each RunJob takes a while, so the first two drives are still in flight when the rest arrive:
  // the first two take 13.5 s, longer than a webhook whose Prefect read timed out (5 s) takes to be
  // answered 503 and sent again (1 s later), even if its second read is slow too; a slot freed
  // before then would rightly drive that webhook's run at once, and fewer would be waiting. The
  // queued drives that follow take 1.5 s each, so the bound still shows in their overlap.
  emulator.addFault({ method: 'RunJob', latencyMs: 12_000, times: 2 })
  emulator.addFault({ method: 'RunJob', latencyMs: 1500 })
  t.teardown(() => emulator.clearFaults())
  const runs: string[] = []
  for (let i = 0; i < 6; i++) runs.push(await s.flowRun())

  const replies = await Promise.all(runs.map(run => s.webhook(run)))
  t.same(replies.map(r => r.statusCode), replies.map(() => 202), 'every webhook is accepted: nothing is refused or lost')
  const waiting = replies.filter(r => r.json().state === 'deferred')
  t.ok(waiting.length >= 4, `the burst beyond the bound waits its turn (${waiting.length} of 6 recorded as waiting)`)
  t.match((await s.detail(waiting[0].json().dispatch_id)).events[0].detail, /2 drives in flight already/)

  // No reconcile, no timer yet (its time is 30 s away): the drives that end start the queued ones.
  // A dispatch is launched once its execution exists and Prefect has its infrastructure_pid.
  const states = async (): Promise<string[]> => (await s.app.inject({ method: 'GET', url: `/v1/dispatches?pool=${s.pool}`, headers: adminHeaders() }))
    .json().items.map((d: { state: string }) => d.state)
  for (const giveUp = Date.now() + 120_000; Date.now() < giveUp; await sleep(200)) {
    if ((await states()).filter(state => state === 'launched').length === runs.length) break
  }
  for (const run of runs) t.equal(executionsOf(emulator, run).length, 1, 'each launched once')
  t.same(await states(), runs.map(() => 'launched'))
  const list = (await s.app.inject({ method: 'GET', url: `/v1/dispatches?pool=${s.pool}`, headers: adminHeaders() })).json()
  // From each dispatch's own log: the time from its claim to its launch. Never more than 2 overlap.
  const spans = await Promise.all(list.items.map(async (d: { id: string }) => {
    const events = (await s.detail(d.id)).events as Array<{ type: string, at: string }>
    const at = (type: string): number => Date.parse(events.find(e => e.type === type)?.at ?? 'missing')
    return [at('claimed'), at('launched')]
  }))
  const most = Math.max(...spans.map(([start]) => spans.filter(([a, b]) => a <= start && start < b).length))
  t.ok(most <= 2, `never more than 2 drives at once (${most})`)
})

t.test('a timer that found the instance saturated, whose queued drive then finds Prefect unreachable, drives its run anyway, with no reconcile', async t => {
  const proxy = await recordingProxy(peers.apiUrl)
  t.teardown(() => proxy.close())
  const logLines: string[] = []
  const s = await scene(t, prefect, peers, emulator, {
    logLines,
    env: { PUSHPOOL_MAX_IN_FLIGHT: '1', PUSHPOOL_PREFETCH_SECONDS: '2', PREFECT_API_URL: proxy.url }
  })
  // The one slot is taken by a launch that lasts, so the other run's timer finds no slot free.
  emulator.addFault({ method: 'RunJob', latencyMs: 15_000, times: 1 })
  t.teardown(() => emulator.clearFaults())
  const first = await s.flowRun()
  const firstReply = s.webhook(first)
  const stateOf = async (run: string): Promise<string | undefined> =>
    (await s.app.inject({ method: 'GET', url: `/v1/dispatches?flow_run_id=${run}`, headers: adminHeaders() })).json().items[0]?.state
  for (const giveUp = Date.now() + 60_000; await stateOf(first) !== 'launching' && Date.now() < giveUp;) await sleep(100)

  const second = await s.flowRun({ type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: new Date(Date.now() + 3000).toISOString() } })
  t.equal((await s.webhook(second)).json().state, 'deferred', 'the second run waits for its time, its timer armed')
  // Its run's reads fail as often as one call of pushpool's client tries: the queued drive, once
  // the slot frees, cannot read the run. Before, the dispatch then waited for the next reconcile.
  const READ = `GET /flow_runs/${second}`
  const TRIES = 4
  const refused = refuseFirst(proxy, READ, TRIES)
  for (const giveUp = Date.now() + 90_000; await stateOf(second) !== 'launched' && Date.now() < giveUp;) await sleep(200)
  t.equal((await firstReply).statusCode, 202)
  t.equal(refused(), TRIES, 'the queued drive met the outage')
  t.ok(logLines.some(line => line.includes('a queued drive failed')), 'it was the queued drive that met it')
  t.equal(await stateOf(second), 'launched', 'the timer armed again drove it')
  t.equal(executionsOf(emulator, second).length, 1, 'one execution')
  t.equal(executionsOf(emulator, first).length, 1)
})
