// The Store contract, run against every backend available in this environment.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore } from '../../src/store/open.ts'
import type { NewDispatch, Store } from '../../src/store/store.ts'

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
    const claimed = await store.transition(dispatch.id, ['received'], 'claimed', {}, { detail: 'claim', reply: { status: 'ACCEPT' } })
    t.equal(claimed?.state, 'claimed')
    t.equal(await store.transition(dispatch.id, ['received'], 'claimed', {}, { detail: 'again' }), null, 'a stale from-state loses')
    const noted = await store.note(dispatch.id, 'attempt_failed', { attempts: 1, error: 'boom' }, { detail: 'UNAVAILABLE' })
    t.equal(noted?.attempts, 1)
    t.equal(noted?.state, 'claimed', 'a note does not move the state')
    await store.transition(dispatch.id, ['claimed'], 'launched', {
      executionName: 'projects/p/locations/r/jobs/j/executions/j-abcde',
      jobSpec: { template: { template: { containers: [{ image: 'x' }] } } },
      launchedAt: new Date().toISOString()
    }, { detail: 'started' })
    const got = await store.getDispatch(dispatch.id)
    t.equal(got?.executionName, 'projects/p/locations/r/jobs/j/executions/j-abcde')
    t.same(got?.jobSpec, { template: { template: { containers: [{ image: 'x' }] } } }, 'JSON round-trips')
    const events = await store.listEvents(dispatch.id)
    t.same(events.map(e => e.type), ['received', 'claimed', 'attempt_failed', 'launched'])
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
}
