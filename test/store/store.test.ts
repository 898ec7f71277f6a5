// The Store contract, run against every backend available in this environment.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore } from '../../src/store/open.ts'
import type { NewDispatch, Store } from '../../src/store/store.ts'
import { freshDatabase, NO_POSTGRES, postgresTestUrl } from './postgres-database.ts'

const backends: Array<{ name: string, open: (t: Test) => Promise<Store> }> = [
  {
    name: 'sqlite',
    open: async t => {
      const dir = mkdtempSync(join(tmpdir(), 'pushpool-store-'))
      const store = await openStore(`sqlite:${join(dir, 'db.sqlite')}`)
      t.teardown(async () => { await store.close(); rmSync(dir, { recursive: true, force: true }) })
      return store
    }
  }
]

const postgresUrl = postgresTestUrl()
if (postgresUrl === undefined) {
  t.comment(NO_POSTGRES)
} else {
  backends.push({
    name: 'postgres',
    open: async t => {
      const store = await openStore(await freshDatabase(t, postgresUrl))
      t.teardown(() => store.close())
      return store
    }
  })
}

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

const input = (key: string, overrides: Partial<NewDispatch> = {}): NewDispatch => ({
  key,
  flowRunId: key.split(':')[0],
  flowRunName: 'brave-otter',
  pool: 'pool-a',
  deploymentId: null,
  state: 'received',
  dueAt: null,
  receivedAt: new Date().toISOString(),
  detail: 'webhook',
  ...overrides
})

for (const backend of backends) {
  t.test(`${backend.name}: one record per idempotency key`, async t => {
    const store = await backend.open(t)
    const results = await Promise.all(Array.from({ length: 10 }, () => store.createDispatch(input('run-1:state-1'))))
    t.equal(results.filter(r => r.created).length, 1, 'exactly one insert wins')
    t.equal(new Set(results.map(r => r.dispatch.id)).size, 1, 'every caller sees the same record')
    const other = await store.createDispatch(input('run-1:state-2'))
    t.ok(other.created, 'a new state id is a new dispatch')
    t.equal((await store.latestDispatchForFlowRun('run-1'))?.id, other.dispatch.id, 'latest for the flow run is the newest')
  })

  t.test(`${backend.name}: transitions are compare-and-set and logged`, async t => {
    const store = await backend.open(t)
    const { dispatch } = await store.createDispatch(input('run-2:s'))
    const claimed = await store.transition(dispatch.id, 'claim', {}, { detail: 'claim', reply: { status: 'ACCEPT' } })
    t.equal(claimed?.state, 'claimed')
    t.equal(await store.transition(dispatch.id, 'claim', {}, { detail: 'again' }), null, 'a stale from-state loses')
    const noted = await store.note(dispatch.id, 'attempt_failed', { attempts: 1, error: 'boom' }, { detail: 'UNAVAILABLE' })
    t.equal(noted?.attempts, 1)
    t.equal(noted?.state, 'claimed', 'a note does not move the state')
    await store.transition(dispatch.id, 'launch', {}, { detail: 'launching' })
    await store.transition(dispatch.id, 'launched', {
      executionName: 'projects/p/locations/r/jobs/j/executions/j-abcde',
      jobSpec: { template: { template: { containers: [{ image: 'x' }] } } },
      launchedAt: new Date().toISOString()
    }, { detail: 'started' })
    const got = await store.getDispatch(dispatch.id)
    t.equal(got?.executionName, 'projects/p/locations/r/jobs/j/executions/j-abcde')
    t.same(got?.jobSpec, { template: { template: { containers: [{ image: 'x' }] } } }, 'JSON round-trips')
    const events = await store.listEvents(dispatch.id)
    t.same(events.map(e => e.type), ['received', 'claimed', 'attempt_failed', 'launching', 'launched'])
    t.same(events[1].reply, { status: 'ACCEPT' })
    t.equal(events[1].from, 'received')
    t.equal(await store.getDispatch('00000000-0000-0000-0000-000000000000'), null)
    t.equal(await store.note('nope', 'x', {}, { detail: '' }), null)
  })

  t.test(`${backend.name}: listing filters and pages without gaps or repeats`, async t => {
    const store = await backend.open(t)
    for (let i = 0; i < 7; i++) {
      await store.createDispatch(input(`run-${i}:s`, { pool: i % 2 === 0 ? 'even' : 'odd' }))
    }
    const seen: string[] = []
    let cursor
    do {
      const page = await store.listDispatches({ limit: 3, cursor })
      seen.push(...page.items.map(d => d.id))
      cursor = page.next ?? undefined
    } while (cursor !== undefined)
    t.equal(seen.length, 7)
    t.equal(new Set(seen).size, 7, 'no repeats across pages')
    const even = await store.listDispatches({ limit: 10, pool: 'even' })
    t.equal(even.items.length, 4)
    t.ok(even.items.every(d => d.pool === 'even'))
    t.equal((await store.listDispatches({ limit: 10, state: 'launched' })).items.length, 0)
    t.equal((await store.listDispatches({ limit: 10, flowRunId: 'run-3' })).items.length, 1)
    t.equal((await store.listDispatches({ limit: 10, since: new Date(Date.now() + 60_000).toISOString() })).items.length, 0)
    await store.ping()
  })

  t.test(`${backend.name}: times are ISO strings with milliseconds, JSON of any shape round-trips`, async t => {
    const store = await backend.open(t)
    const receivedAt = '2026-01-02T03:04:05.678Z'
    const dueAt = '2026-01-02T03:05:00.001Z'
    const { dispatch } = await store.createDispatch(input('run-t:s', { state: 'deferred', receivedAt, dueAt }))
    t.equal(dispatch.receivedAt, receivedAt)
    t.equal(dispatch.dueAt, dueAt)
    t.match(dispatch.createdAt, ISO_MS)
    t.match(dispatch.updatedAt, ISO_MS)
    t.equal(dispatch.launchedAt, null)
    t.equal(dispatch.jobSpec, null)
    await store.note(dispatch.id, 'string_reply', {}, { detail: 'a', reply: 'plain text' })
    await store.note(dispatch.id, 'number_reply', {}, { detail: 'b', reply: 42 })
    await store.note(dispatch.id, 'no_reply', { jobSpec: ['list', { nested: true }] }, { detail: 'c' })
    const events = await store.listEvents(dispatch.id)
    t.same(events.map(e => e.reply), [null, 'plain text', 42, null])
    t.ok(events.every(e => ISO_MS.test(e.at)), 'event times carry milliseconds')
    t.same((await store.getDispatch(dispatch.id))?.jobSpec, ['list', { nested: true }])
    const cleared = await store.note(dispatch.id, 'cleared', { jobSpec: null, dueAt: null }, { detail: 'd' })
    t.equal(cleared?.jobSpec, null)
    t.equal(cleared?.dueAt, null)
  })

  t.test(`${backend.name}: a transition from a state the dispatch is not in changes nothing`, async t => {
    const store = await backend.open(t)
    const { dispatch } = await store.createDispatch(input('run-c:s'))
    t.equal(await store.transition(dispatch.id, 'launched', { attempts: 9 }, { detail: 'stale' }), null)
    t.equal(await store.transition(dispatch.id, 'claim', { attempts: 9 }, { detail: 'narrowed' }, { from: ['deferred'] }), null, 'from narrows the states left')
    t.equal(await store.transition('00000000-0000-0000-0000-000000000000', 'claim', {}, { detail: 'gone' }), null)
    const after = await store.getDispatch(dispatch.id)
    t.equal(after?.state, 'received')
    t.equal(after?.attempts, 0)
    t.same((await store.listEvents(dispatch.id)).map(e => e.type), ['received'], 'no event for a lost compare-and-set')
    const winners = await Promise.all(Array.from({ length: 8 }, () =>
      store.transition(dispatch.id, 'claim', {}, { detail: 'race' })))
    t.equal(winners.filter(w => w !== null).length, 1, 'concurrent claims: exactly one wins')
  })

  t.test(`${backend.name}: a lease is taken by one caller, fences writes, and is taken over only once it expires`, async t => {
    const store = await backend.open(t)
    const { dispatch } = await store.createDispatch(input('run-l:s'))
    const racers = await Promise.all(Array.from({ length: 8 }, (_, i) => store.acquire(dispatch.id, ['received'], `owner-${i}`, 60_000)))
    const winners = racers.filter(r => r !== null)
    t.equal(winners.length, 1, 'one of concurrent acquisitions wins')
    const first = winners[0]!.lease
    t.equal(first.token, 1)
    t.equal(winners[0]!.dispatch.lease?.owner, first.owner, 'the record names its owner')
    t.equal(await store.acquire(dispatch.id, ['received'], 'late', 60_000), null, 'a live lease cannot be taken')
    t.same((await store.listActionable(['received'], new Date().toISOString(), 10)).map(d => d.id), [], 'a held dispatch is nobody else\'s work')
    t.equal(await store.acquire(dispatch.id, ['claimed'], first.owner, 60_000), null, 'nor one in another state')

    const renewed = await store.renew(first, 120_000)
    t.ok(renewed !== null && renewed.expiresAt > first.expiresAt, 'renewal extends it')
    const claimed = await store.transition(dispatch.id, 'claim', {}, { detail: 'claim' }, { lease: renewed! })
    t.equal(claimed?.state, 'claimed', 'a write under the live lease is made')

    // The lease runs out (a drive that stalled past its own deadlines) and another instance takes over.
    const short = await store.renew(renewed!, 1)
    await new Promise(resolve => setTimeout(resolve, 20))
    t.equal(await store.renew(short!, 60_000), null, 'an expired lease cannot be renewed')
    const takeover = await store.acquire(dispatch.id, ['claimed'], 'owner-b', 60_000)
    t.equal(takeover?.lease.token, 2, 'a takeover fences with a higher token')
    t.equal(await store.transition(dispatch.id, 'launch', {}, { detail: 'stale drive' }, { lease: short! }), null, 'the old holder can write nothing')
    t.equal(await store.note(dispatch.id, 'attempt_failed', { attempts: 7 }, { detail: 'stale' }, { lease: short! }), null)
    t.equal((await store.getDispatch(dispatch.id))?.attempts, 0)
    t.equal((await store.transition(dispatch.id, 'launch', {}, { detail: 'new owner' }, { lease: takeover!.lease }))?.state, 'launching')
    const events = (await store.listEvents(dispatch.id)).map(e => e.type)
    t.same(events, ['received', 'claimed', 'lease_taken_over', 'launching'], 'the takeover is in the event log')

    await store.release(takeover!.lease)
    t.equal((await store.getDispatch(dispatch.id))?.lease, null, 'released: nobody owns it')
    t.equal((await store.acquire(dispatch.id, ['launching'], 'owner-c', 60_000))?.lease.token, 3, 'and it is to be had at once')
    t.same((await store.listEvents(dispatch.id)).map(e => e.type).filter(type => type === 'lease_taken_over').length, 1,
      'taking a released lease is no takeover')
  })

  t.test(`${backend.name}: a dispatch recorded already taken is its creator's alone, and only a new one is taken`, async t => {
    const store = await backend.open(t)
    const racers = await Promise.all(Array.from({ length: 6 }, (_, i) =>
      store.createDispatch(input('run-lc:s', { leasedTo: { owner: `owner-${i}`, ttlMs: 60_000 } }))))
    const won = racers.filter(r => r.created)
    t.equal(won.length, 1, 'one insert wins')
    const { dispatch } = won[0]
    const lease = dispatch.lease!
    t.equal(lease.token, 1, 'taken with its first lease, as acquire would take it')
    const expiresIn = Date.parse(lease.expiresAt) - Date.now()
    t.ok(expiresIn > 50_000 && expiresIn <= 60_000, `for the time asked, from the write (${expiresIn} ms left)`)
    for (const lost of racers.filter(r => !r.created)) t.same(lost.dispatch.lease, lease, 'the others get the record as the winner took it')
    t.equal(await store.acquire(dispatch.id, ['received'], 'late', 60_000), null, 'a live lease cannot be taken')
    t.same((await store.listActionable(['received'], new Date().toISOString(), 10)).map(d => d.id), [], 'nor is it anybody else\'s work')
    const claimed = await store.transition(dispatch.id, 'claim', {}, { detail: 'claim' }, { lease: { dispatchId: dispatch.id, ...lease } })
    t.equal(claimed?.state, 'claimed', 'a write under it is made')
    t.same((await store.listEvents(dispatch.id)).map(e => e.type), ['received', 'claimed'], 'taking it as it is recorded logs nothing of its own')

    const free = await store.createDispatch(input('run-ld:s'))
    t.equal(free.dispatch.lease, null, 'without leasedTo a new record is nobody\'s')
    t.equal((await store.acquire(free.dispatch.id, ['received'], 'owner-a', 60_000))?.lease.token, 1, 'and its first acquisition has token 1')
  })

  t.test(`${backend.name}: a fenced write can hold its lease on, or give it up, in the same write`, async t => {
    const store = await backend.open(t)
    const { dispatch } = await store.createDispatch(input('run-la:s'))
    const held = (await store.acquire(dispatch.id, ['received'], 'owner-a', 1_000))!.lease
    const claimed = await store.transition(dispatch.id, 'claim', {}, { detail: 'claim' }, { lease: held, leaseAfter: { holdMs: 600_000 } })
    const expiresIn = Date.parse(claimed!.lease!.expiresAt) - Date.now()
    t.ok(expiresIn > 590_000 && expiresIn <= 600_000, `held on for the time asked, from the write (${expiresIn} ms left)`)
    t.equal(claimed!.lease!.token, held.token, 'the same lease')
    const noted = await store.note(dispatch.id, 'pending_accepted', {}, { detail: 'noted' }, { lease: held, leaseAfter: { holdMs: 1_200_000 } })
    t.ok(Date.parse(noted!.lease!.expiresAt) - Date.now() > 1_190_000, 'a note holds it on too')
    t.equal(await store.acquire(dispatch.id, ['claimed'], 'owner-b', 60_000), null, 'nobody else can take it meanwhile')

    const launching = await store.transition(dispatch.id, 'launch', {}, { detail: 'launch' }, { lease: held, leaseAfter: 'release' })
    t.equal(launching?.state, 'launching')
    t.equal(launching?.lease, null, 'released with the write')
    t.equal((await store.acquire(dispatch.id, ['launching'], 'owner-b', 60_000))?.lease.token, held.token + 1, 'and to be had at once')

    // Without a lease to fence it, a write changes no lease.
    const { dispatch: other } = await store.createDispatch(input('run-lb:s'))
    const otherLease = (await store.acquire(other.id, ['received'], 'owner-a', 60_000))!.lease
    const unfenced = await store.transition(other.id, 'claim', {}, { detail: 'claim' }, { leaseAfter: 'release' })
    t.equal(unfenced?.lease?.token, otherLease.token, 'an unfenced write leaves the lease as it was')
    t.same((await store.listEvents(dispatch.id)).map(e => e.type), ['received', 'claimed', 'pending_accepted', 'launching'], 'no takeover was logged')
  })

  t.test(`${backend.name}: cancellation is marked once, and never on a final dispatch`, async t => {
    const store = await backend.open(t)
    const { dispatch } = await store.createDispatch(input('run-k:s'))
    const marks = await Promise.all(Array.from({ length: 8 }, () => store.requestCancel(dispatch.id)))
    t.equal(marks.filter(m => m !== null).length, 1, 'one of concurrent requests marks it')
    t.match(marks.find(m => m !== null)?.cancelRequestedAt, ISO_MS)
    t.equal(await store.requestCancel(dispatch.id), null, 'a later request is a duplicate')
    const done = (await store.createDispatch(input('run-k2:s'))).dispatch
    await store.transition(done.id, 'supersede', {}, { detail: 'gone' })
    t.equal(await store.requestCancel(done.id), null)
  })

  t.test(`${backend.name}: exclusively runs one caller per key at a time`, async t => {
    const store = await backend.open(t)
    let inside = 0
    let most = 0
    const order: number[] = []
    await Promise.all(Array.from({ length: 6 }, (_, i) => store.exclusively('limit:p', async () => {
      inside++
      most = Math.max(most, inside)
      await new Promise(resolve => setTimeout(resolve, 5))
      order.push(i)
      inside--
    })))
    t.equal(most, 1, 'never two at once under one key')
    t.equal(order.length, 6)
    const failed = store.exclusively('limit:p', async () => { throw new Error('boom') })
    await t.rejects(failed, /boom/, 'a failure is its caller\'s')
    t.equal(await store.exclusively('limit:p', async () => 'next'), 'next', 'and the next caller runs')
  })

  t.test(`${backend.name}: reconcile's work list and retention`, async t => {
    const store = await backend.open(t)
    const now = new Date().toISOString()
    const past = new Date(Date.now() - 60_000).toISOString()
    const future = new Date(Date.now() + 60_000).toISOString()
    const due = (await store.createDispatch(input('run-a1:s', { state: 'deferred', dueAt: past }))).dispatch
    await store.createDispatch(input('run-a2:s', { state: 'deferred', dueAt: future }))
    const launched = (await store.createDispatch(input('run-a3:s', { state: 'launched' }))).dispatch
    await store.createDispatch(input('run-a4:s', { state: 'received' }))
    const actionable = await store.listActionable(['deferred', 'launched'], now, 10)
    t.same(actionable.map(d => d.id).sort(), [due.id, launched.id].sort(), 'due or undated, in the asked states')
    t.equal((await store.listActionable(['deferred', 'launched'], now, 1)).length, 1, 'the limit holds')
    const [first] = await store.listActionable(['deferred', 'launched'], now, 1)
    const rest = await store.listActionable(['deferred', 'launched'], now, 10, { updatedAt: first.updatedAt, id: first.id })
    t.same(rest.map(d => d.id), actionable.map(d => d.id).filter(id => id !== first.id), 'the next page starts after the cursor')

    const kept = await store.note(launched.id, 'keep', { keepJob: true }, { detail: 'keep_job' })
    t.equal(kept?.keepJob, true)
    t.equal(due.keepJob, false)

    // Whether an earlier launch may have left an execution: assumed until a launch proves otherwise.
    t.equal(due.executionMayExist, true, 'true unless cleared')
    const certain = await store.transition(due.id, 'claim', { executionMayExist: false }, { detail: 'claim' })
    t.equal(certain?.executionMayExist, false)
    t.equal((await store.getDispatch(due.id))?.executionMayExist, false, 'stored')
    const other = await store.transition(due.id, 'launch', {}, { detail: 'launch' })
    t.equal(other?.executionMayExist, false, 'a transition that does not set it keeps it')
    t.equal((await store.transition(due.id, 'retry', { executionMayExist: true }, { detail: 'redrive' }))?.executionMayExist, true)
    const identity = { source: 'credentials-block' as const, blockDocumentId: '6b4f2c2e-0000-4000-8000-000000000001' }
    t.same((await store.transition(due.id, 'launch', { gcpIdentity: identity }, { detail: 'relaunch' }))?.gcpIdentity, identity, 'the identity round-trips')

    const skipped = (await store.createDispatch(input('run-a5:s'))).dispatch
    await store.transition(skipped.id, 'supersede', {}, { detail: 'owned elsewhere' })
    t.equal(await store.prune(past), 0, 'nothing finished that long ago')
    t.equal(await store.prune(future), 1, 'only the dispatch in a final state goes')
    t.equal(await store.getDispatch(skipped.id), null)
    t.same(await store.listEvents(skipped.id), [], 'its events go with it')
    t.ok(await store.getDispatch(launched.id), 'unfinished dispatches stay')
  })

  t.test(`${backend.name}: a pool's summary counts its dispatches by state and measures launch latency`, async t => {
    const store = await backend.open(t)
    t.same(await store.summarizePool('empty'), { counts: {}, lastDispatchAt: null, recentLatenciesMs: [] })
    const receivedAt = new Date(Date.now() - 5000).toISOString()
    const first = (await store.createDispatch(input('run-p1:s', { pool: 'p', receivedAt }))).dispatch
    await store.createDispatch(input('run-p2:s', { pool: 'p' }))
    const newest = (await store.createDispatch(input('run-p3:s', { pool: 'p', state: 'deferred' }))).dispatch
    await store.createDispatch(input('run-q1:s', { pool: 'q' }))
    await store.transition(first.id, 'claim', {}, { detail: 'claim' })
    await store.transition(first.id, 'launch', {}, { detail: 'launch' })
    await store.transition(first.id, 'launched', { launchedAt: new Date(Date.parse(receivedAt) + 1234).toISOString() }, { detail: 'up' })
    const summary = await store.summarizePool('p')
    t.same(summary.counts, { received: 1, launched: 1, deferred: 1 })
    t.equal(summary.lastDispatchAt, newest.createdAt)
    t.same(summary.recentLatenciesMs, [1234])
  })
}
