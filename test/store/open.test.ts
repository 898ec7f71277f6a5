import t from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore } from '../../src/store/open.ts'

t.test('sqlite: URLs open the embedded store', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-open-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = await openStore(`sqlite:${join(dir, 'db.sqlite')}`)
  t.equal(store.kind, 'sqlite')
  await store.close()
})

t.test('an unknown scheme is refused without echoing the URL', async t => {
  const err = await openStore('mysql://app:hunter2@db/ledger').then(() => null, (e: unknown) => e)
  t.match(err, { message: /Unsupported PUSHPOOL_STORE_URL scheme/ })
  t.notOk(String(err).includes('hunter2'))
})

t.test('sqlite: the file\'s own directory is made, a missing parent is refused with the fix', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-open-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = await openStore(`sqlite:${join(dir, 'data', 'db.sqlite')}`)
  t.equal(store.kind, 'sqlite', 'like the default ./data/pushpool.db')
  await store.close()
  const missing = join(dir, 'no', 'such', 'dir', 'x.db')
  await t.rejects(openStore(`sqlite:${missing}`), { message: /no\/such does not exist .*create it, or correct PUSHPOOL_STORE_URL/ })
  t.notOk(existsSync(join(dir, 'no')), 'no directory tree was made')
})
