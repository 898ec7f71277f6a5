// A drive's lease (src/dispatch/ownership.ts) is held before every side effect for as long as the
// side effect may take; a write that already held it on for the next step spares that step's
// renewal (one commit less), and the last write of a drive can give it up.
import t, { type Test } from 'tap'
import { openStore } from '../../src/store/open.ts'
import type { Store } from '../../src/store/store.ts'
import { Ownership } from '../../src/dispatch/ownership.ts'

const DEADLINES = { prefectCallMs: 10_000, cloudRunCallMs: 30_000, createJobMs: 120_000 }

/** The real store, with its lease writes counted. */
async function countedStore (t: Test): Promise<{ store: Store, writes: { renew: number, release: number } }> {
  const store = await openStore('sqlite::memory:')
  t.teardown(() => store.close())
  const writes = { renew: 0, release: 0 }
  const counted: Store = Object.create(store)
  counted.renew = async (lease, ttlMs) => { writes.renew++; return await store.renew(lease, ttlMs) }
  counted.release = async lease => { writes.release++; await store.release(lease) }
  return { store: counted, writes }
}

const expiresIn = async (store: Store, id: string): Promise<number> => Date.parse((await store.getDispatch(id))!.lease!.expiresAt) - Date.now()

t.test('a hold renews the lease, unless the write before it held it on for that step', async t => {
  const { store, writes } = await countedStore(t)
  const { dispatch } = await store.createDispatch({ key: 'run:s', flowRunId: 'run', flowRunName: 'otter', pool: 'p', deploymentId: null, state: 'received', dueAt: null, receivedAt: new Date().toISOString(), detail: 'webhook' })
  const { own } = (await Ownership.acquire(store, dispatch.id, ['received'], 'me', DEADLINES, 1_000))!
  t.ok(await expiresIn(store, dispatch.id) <= 6_000, 'acquired for the first step and the margin')

  await own.hold(20_000)
  t.equal(writes.renew, 1, 'a longer step than the lease covers: renewed')
  t.ok(await expiresIn(store, dispatch.id) > 24_000)

  const claimed = await own.transition('claim', {}, { detail: 'claim' }, { holdFor: 40_000 })
  t.equal(claimed?.state, 'claimed')
  t.ok(await expiresIn(store, dispatch.id) > 45_000, 'the transition held it on for the next step and the margin')
  await own.hold(40_000)
  t.equal(writes.renew, 1, 'so that step\'s hold wrote nothing')
  await own.hold(10_000)
  t.equal(writes.renew, 1, 'nor does a shorter one')
  await own.hold(60_000)
  t.equal(writes.renew, 2, 'a longer one renews')
  t.ok(await expiresIn(store, dispatch.id) > 64_000)

  await own.note('pending_accepted', {}, { detail: 'accepted' }, { holdFor: 90_000 })
  await own.hold(90_000)
  t.equal(writes.renew, 2, 'a note can hold it on too')

  const launching = await own.transition('launch', {}, { detail: 'launch' }, { release: true })
  t.equal(launching?.lease, null, 'the last write gave the lease up')
  await own.release()
  t.equal(writes.release, 0, 'so release writes nothing more')
  t.ok(await Ownership.acquire(store, dispatch.id, ['launching'], 'other', DEADLINES, 1_000), 'and another drive may take it at once')
})

t.test('a dispatch recorded already owned is driven under that lease, with no acquisition of its own', async t => {
  const { store, writes } = await countedStore(t)
  const input = { key: 'run3:s', flowRunId: 'run3', flowRunName: 'otter', pool: 'p', deploymentId: null, state: 'received' as const, dueAt: null, receivedAt: new Date().toISOString(), detail: 'webhook' }
  const created = await Ownership.create(store, input, 'me', DEADLINES, 1_000)
  t.ok(created.created && created.own !== undefined, 'recorded and owned')
  const left = await expiresIn(store, created.dispatch.id)
  t.ok(left > 5_000 && left <= 6_000, `for the first step and the margin (${left} ms left)`)
  t.equal(await Ownership.acquire(store, created.dispatch.id, ['received'], 'other', DEADLINES, 1_000), null, 'nobody else can take it')
  t.equal((await created.own!.transition('claim', {}, { detail: 'claim' }))?.state, 'claimed', 'its writes are made under the lease')
  t.equal(writes.renew, 0, 'with no renewal')

  const again = await Ownership.create(store, input, 'other', DEADLINES, 1_000)
  t.equal(again.created, false, 'the same key again is the record already made')
  t.equal(again.own, undefined, 'which the caller does not own')
  t.equal(again.dispatch.lease?.owner, 'me', 'and keeps its owner')
})

t.test('a write that another drive\'s lease fences out changes nothing, and the hold after it renews (and finds the lease lost)', async t => {
  const { store, writes } = await countedStore(t)
  const { dispatch } = await store.createDispatch({ key: 'run2:s', flowRunId: 'run2', flowRunName: 'otter', pool: 'p', deploymentId: null, state: 'received', dueAt: null, receivedAt: new Date().toISOString(), detail: 'webhook' })
  const mine = (await Ownership.acquire(store, dispatch.id, ['received'], 'me', DEADLINES, 1_000))!
  const own = mine.own
  // Another drive takes the dispatch, as after an expiry (released here to stand for one).
  await store.release({ dispatchId: dispatch.id, ...mine.dispatch.lease! })
  const other = (await Ownership.acquire(store, dispatch.id, ['received'], 'other', DEADLINES, 1_000))!
  t.ok(other)
  t.equal(await own.transition('claim', {}, { detail: 'stale' }, { holdFor: 40_000 }), null, 'the stale write is refused')
  await t.rejects(own.hold(40_000), { name: 'LeaseLost' }, 'its hold was not taken for granted')
  t.equal(writes.renew, 1)
})
