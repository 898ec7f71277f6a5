// What only the shared store must guarantee: several instances (separate pools, as separate
// processes would have) racing on one database, migrations started together, and a password in the
// store URL that never reaches an error.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { inspect } from 'node:util'
import pg from 'pg'
import { openStore } from '../../src/store/open.ts'
import { POSTGRES_MIGRATIONS } from '../../src/store/migrations.ts'
import type { NewDispatch, Store } from '../../src/store/store.ts'
import { freshDatabase, NO_POSTGRES, postgresTestUrl } from './postgres-database.ts'

const serverUrl = postgresTestUrl()

const input = (key: string): NewDispatch => ({
  key,
  flowRunId: key.split(':')[0],
  flowRunName: null,
  pool: 'pool-a',
  deploymentId: null,
  state: 'received',
  dueAt: null,
  receivedAt: new Date().toISOString(),
  detail: 'webhook'
})

async function openInstances (t: Test, url: string, count: number): Promise<Store[]> {
  const stores = await Promise.all(Array.from({ length: count }, () => openStore(url)))
  t.teardown(async () => { await Promise.all(stores.map(s => s.close())) })
  return stores
}

async function query<T extends pg.QueryResultRow> (url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(sql)).rows
  } finally {
    await client.end()
  }
}

/** Every rendering of an error a log line or a crash report could show. */
const renderings = (err: unknown): string =>
  [String(err), err instanceof Error ? err.stack : '', inspect(err, { depth: 5 }), JSON.stringify(err)].join('\n')

async function openError (url: string): Promise<unknown> {
  try {
    const store = await openStore(url)
    await store.close()
  } catch (err) {
    return err
  }
  throw new Error('the store opened, but it should not have')
}

if (serverUrl === undefined) {
  t.comment(NO_POSTGRES)
} else {
  const withPassword = (password: string, changes: { port?: string, pathname?: string } = {}): string => {
    const url = new URL(serverUrl)
    url.password = password
    if (changes.port !== undefined) url.port = changes.port
    if (changes.pathname !== undefined) url.pathname = changes.pathname
    return url.toString()
  }

  t.test('two instances creating the same dispatches concurrently: one record per key', async t => {
    const [a, b] = await openInstances(t, await freshDatabase(t, serverUrl), 2)
    const keys = Array.from({ length: 20 }, (_, i) => `run-${i}:state`)
    const results = await Promise.all(keys.flatMap(key => [a, b, a, b].map(store => store.createDispatch(input(key)))))
    t.equal(results.filter(r => r.created).length, keys.length, 'one insert per key wins, across both pools')
    for (const key of keys) {
      const ids = new Set(results.filter(r => r.dispatch.key === key).map(r => r.dispatch.id))
      t.equal(ids.size, 1, `${key}: every caller sees the same record`)
    }
    const listed = await b.listDispatches({ limit: 100 })
    t.equal(listed.items.length, keys.length, 'no duplicate rows')
    const events = await Promise.all(listed.items.map(d => a.listEvents(d.id)))
    t.ok(events.every(e => e.length === 1 && e[0].type === 'received'), 'one received event each')
  })

  t.test('two instances claiming the same dispatch: one compare-and-set wins', async t => {
    const [a, b] = await openInstances(t, await freshDatabase(t, serverUrl), 2)
    const { dispatch } = await a.createDispatch(input('run-x:state'))
    const claims = await Promise.all([a, b, a, b].map(store => store.transition(dispatch.id, 'claim', {}, { detail: 'claim' })))
    t.equal(claims.filter(c => c !== null).length, 1)
    t.same((await b.listEvents(dispatch.id)).map(e => e.type), ['received', 'claimed'])
  })

  t.test('two instances: one takes the lease, and the limit lock holds across them', async t => {
    const [a, b] = await openInstances(t, await freshDatabase(t, serverUrl), 2)
    const { dispatch } = await a.createDispatch(input('run-lease:state'))
    const taken = await Promise.all([a, b, a, b].map((store, i) => store.acquire(dispatch.id, ['received'], `instance-${i}`, 60_000)))
    t.equal(taken.filter(x => x !== null).length, 1, 'one lease across instances')
    let inside = 0
    let most = 0
    await Promise.all([a, b, a, b, a, b].map(store => store.exclusively('limit:shared', async () => {
      inside++
      most = Math.max(most, inside)
      await new Promise(resolve => setTimeout(resolve, 20))
      inside--
    })))
    t.equal(most, 1, 'never two instances inside one limit at once')
  })

  t.test('instances starting together on an empty database: one schema, each migration applied once', async t => {
    const url = await freshDatabase(t, serverUrl)
    const stores = await openInstances(t, url, 6)
    await Promise.all(stores.map(s => s.ping()))
    const versions = await query<{ version: number }>(url, 'SELECT version FROM schema_migrations ORDER BY version')
    t.same(versions.map(v => v.version), POSTGRES_MIGRATIONS.map((_, i) => i + 1))
    const tables = await query<{ table_name: string }>(url,
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
    t.same(tables.map(r => r.table_name), ['dispatch_events', 'dispatches', 'schema_migrations'])
    const again = await openStore(url)
    await again.close()
    t.equal((await query(url, 'SELECT version FROM schema_migrations')).length, POSTGRES_MIGRATIONS.length, 'a restart applies nothing')
  })

  t.test('a password in the store URL never appears in an error', async t => {
    const password = 'Sup3r-s3cret-pa55word'
    const cases: Array<[string, string]> = [
      ['wrong password', withPassword(password)],
      ['nothing listening', withPassword(password, { port: '1' })],
      ['no such database', withPassword(password, { pathname: '/no_such_database' })],
      ['password as a query parameter', `${withPassword('', { port: '1' })}?password=${password}`],
      ['malformed URL', `postgres://pushpool:${password}@127.0.0.1:port/db`],
      ['Cloud SQL socket form', `postgresql://pushpool:${password}@/pushpool?host=/nonexistent/cloudsql/p:r:i`]
    ]
    for (const [name, url] of cases) {
      const err = await openError(url)
      t.notOk(renderings(err).includes(password), `${name}: not in the message, stack or fields`)
      t.match(String(err), /cannot open the PostgreSQL store at postgres(ql)?:\/\/pushpool:\*\*\*@|password=\*\*\*/, `${name}: names the redacted URL`)
    }
  })

  t.test('a server started with a wrong store password exits and prints no password', async t => {
    const password = 'An0ther-s3cret-pa55word'
    const child = spawn(process.execPath, ['src/server.ts'], {
      env: {
        PATH: process.env.PATH,
        _TAPJS_PROCESSINFO_COVERAGE_: '0',
        PORT: '0',
        PUSHPOOL_STORE_URL: withPassword(password),
        PUSHPOOL_WEBHOOK_SECRETS: 'a-webhook-secret-of-some-length'
      },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
    t.not(code, 0, 'the process fails')
    t.match(output, /cannot open the PostgreSQL store/)
    t.notOk(output.includes(password), 'the password is not printed')
  })
}
