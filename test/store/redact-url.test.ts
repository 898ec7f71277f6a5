import t from 'tap'
import { redactUrl, scrubPasswords } from '../../src/store/redact-url.ts'

t.test('redactUrl masks the password and keeps what helps diagnosis', async t => {
  t.equal(redactUrl('postgres://app:hunter2@db.internal:5432/ledger'), 'postgres://app:***@db.internal:5432/ledger')
  t.equal(redactUrl('postgresql://app:p%40ss@10.0.0.3/ledger?sslmode=require'), 'postgresql://app:***@10.0.0.3/ledger?sslmode=require')
  t.equal(redactUrl('postgres://app:p@ss/word@db/ledger'), 'postgres://app:***@db/ledger', 'an unencoded @ or / in the password')
  t.equal(redactUrl('postgres://app:pw@/ledger?host=/cloudsql/p:r:i'), 'postgres://app:***@/ledger?host=/cloudsql/p:r:i', 'Cloud SQL socket form')
  t.equal(redactUrl('postgres://db/ledger?user=app&password=hunter2&sslmode=require'),
    'postgres://db/ledger?user=app&password=***&sslmode=require', 'a password query parameter')
  t.equal(redactUrl('postgres://app@db:5432/ledger'), 'postgres://app@db:5432/ledger', 'no password, nothing to mask')
  t.equal(redactUrl('postgres://db:5432/ledger'), 'postgres://db:5432/ledger')
  t.equal(redactUrl('sqlite:./data/pushpool.db'), 'sqlite:./data/pushpool.db')
})

t.test('scrubPasswords masks the password as written and as decoded', async t => {
  const url = 'postgres://app:p%40ss-word@db/ledger?password=other-one'
  t.equal(scrubPasswords('rejected p%40ss-word, p@ss-word and other-one', url), 'rejected ***, *** and ***')
  t.equal(scrubPasswords('nothing secret here', 'postgres://app@db/ledger'), 'nothing secret here')
  t.equal(scrubPasswords('bad %E0%A4%A', 'postgres://app:%E0%A4%A@db/x'), 'bad ***', 'an undecodable password is masked as written')
})
