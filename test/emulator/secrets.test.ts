// Secret Manager through the real @google-cloud/secret-manager client.
import t from 'tap'
import { crc32c } from '../../src/emulator/crc32c.ts'
import { errorCode, rig } from './helpers.ts'

const r = await rig(t)

t.test('accessSecretVersion: latest is the newest putSecret; numbered versions stay readable', async t => {
  r.emu.putSecret('p', 'token', 'first')
  r.emu.putSecret('p', 'token', Buffer.from('second'))
  const [latest] = await r.secrets.accessSecretVersion({ name: 'projects/p/secrets/token/versions/latest' })
  t.equal(latest.name, 'projects/p/secrets/token/versions/2')
  t.equal(Buffer.from(latest.payload!.data!).toString('utf8'), 'second')
  t.equal(String(latest.payload!.dataCrc32c), String(crc32c(Buffer.from('second'))))
  const [first] = await r.secrets.accessSecretVersion({ name: 'projects/p/secrets/token/versions/1' })
  t.equal(Buffer.from(first.payload!.data!).toString('utf8'), 'first')
})

t.test('crc32c is CRC-32C (Castagnoli)', async t => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283)
})

t.test('a client can provision secrets: createSecret, addSecretVersion, getSecret, getSecretVersion', async t => {
  const [secret] = await r.secrets.createSecret({
    parent: 'projects/p', secretId: 'db-password', secret: { replication: { automatic: {} }, labels: { app: 'x' } }
  })
  t.equal(secret.name, 'projects/p/secrets/db-password')
  const data = Buffer.from('hunter2')
  const [version] = await r.secrets.addSecretVersion({
    parent: secret.name, payload: { data, dataCrc32c: crc32c(data) }
  })
  t.equal(version.name, 'projects/p/secrets/db-password/versions/1')
  t.equal(version.state, 'ENABLED')
  const [got] = await r.secrets.getSecret({ name: secret.name })
  t.same(got.labels, { app: 'x' })
  const [gotVersion] = await r.secrets.getSecretVersion({ name: version.name })
  t.equal(gotVersion.clientSpecifiedPayloadChecksum, true)
  const [accessed] = await r.secrets.accessSecretVersion({ name: `${secret.name}/versions/latest` })
  t.equal(Buffer.from(accessed.payload!.data!).toString(), 'hunter2')
})

t.test('error codes', async t => {
  const code = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => errorCode(e))
  t.equal(await code(r.secrets.accessSecretVersion({ name: 'projects/p/secrets/absent/versions/latest' })), 5)
  r.emu.putSecret('p', 'one-version', 'x')
  t.equal(await code(r.secrets.accessSecretVersion({ name: 'projects/p/secrets/one-version/versions/7' })), 5)
  t.equal(await code(r.secrets.getSecret({ name: 'projects/p/secrets/absent' })), 5)
  t.equal(await code(r.secrets.createSecret({ parent: 'projects/p', secretId: 'one-version', secret: {} })), 6)
  t.equal(await code(r.secrets.createSecret({ parent: 'projects/p', secretId: 'bad/id', secret: {} })), 3)
  t.equal(await code(r.secrets.addSecretVersion({ parent: 'projects/p/secrets/one-version', payload: { data: Buffer.from('y'), dataCrc32c: 1 } })), 3)
  t.equal(await code(r.secrets.accessSecretVersion({ name: 'projects/p/secrets/one-version' })), 3)
})
