// The HTTP side's ID-token issuer: tokens the emulator mints verify with pushpool's own verifier
// (google-auth-library) against the emulator's certificates, as Google's verify against Google's.
import { createPublicKey, verify } from 'node:crypto'
import t from 'tap'
import { GoogleCertsUnavailable, GoogleIdTokenVerifier, InvalidIdToken } from '../../src/auth/google-id-token.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const emu = await startEmulator()
t.teardown(() => emu.close())

const AUDIENCE = 'https://pushpool.example.run.app'
const INVOKER = 'tasks-invoker@proj.iam.gserviceaccount.com'

const payloadOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<string, unknown>

t.test('a minted token verifies with GoogleIdTokenVerifier against certsUrl', async t => {
  t.match(emu.certsUrl, /^http:\/\/127\.0\.0\.1:\d+\/oauth2\/v1\/certs$/)
  const verifier = new GoogleIdTokenVerifier({ certsUrl: emu.certsUrl, audience: AUDIENCE })
  const identity = await verifier.verify(emu.idToken(INVOKER, AUDIENCE))
  t.same(identity, { email: INVOKER, emailVerified: true })
})

t.test('a token for another audience is refused', async t => {
  const verifier = new GoogleIdTokenVerifier({ certsUrl: emu.certsUrl, audience: AUDIENCE })
  const error = await verifier.verify(emu.idToken(INVOKER, 'https://someone-else.run.app')).catch((e: unknown) => e)
  t.ok(error instanceof InvalidIdToken)
  t.equal((error as Error).message, 'Wrong recipient')
})

t.test('the claims are Google\'s for a service account: iss, aud, azp = sub = a numeric id, an hour of life', async t => {
  const token = emu.idToken(INVOKER, AUDIENCE)
  const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()) as Record<string, unknown>
  t.match(header, { alg: 'RS256', typ: 'JWT', kid: /^[0-9a-f]{40}$/ })
  const claims = payloadOf(token)
  t.match(claims, { iss: 'https://accounts.google.com', aud: AUDIENCE, email: INVOKER, email_verified: true })
  t.match(claims.sub, /^\d{21}$/)
  t.equal(claims.azp, claims.sub)
  t.equal(payloadOf(emu.idToken(INVOKER, 'other')).sub, claims.sub, 'the same account has the same id')
  t.not(payloadOf(emu.idToken('other@proj.iam.gserviceaccount.com', AUDIENCE)).sub, claims.sub)
  t.equal(Number(claims.exp) - Number(claims.iat), 3600)
})

t.test('the JWK form at /oauth2/v3/certs holds the same key', async t => {
  const res = await fetch(`${emu.httpUrl}/oauth2/v3/certs`)
  t.equal(res.status, 200)
  t.match(res.headers.get('cache-control'), /max-age=\d+/)
  const { keys } = await res.json() as { keys: Array<{ kid: string, n: string, e: string, kty: string }> }
  t.equal(keys.length, 1)
  const token = emu.idToken(INVOKER, AUDIENCE)
  const [header, payload, signature] = token.split('.')
  t.equal(keys[0].kid, (JSON.parse(Buffer.from(header, 'base64url').toString()) as { kid: string }).kid)
  const key = createPublicKey({ key: { kty: keys[0].kty, n: keys[0].n, e: keys[0].e }, format: 'jwk' })
  t.ok(verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url')))
})

t.test('HTTP calls are counted and faulted like gRPC ones; errors have Google\'s JSON shape', async t => {
  emu.resetCalls()
  emu.addFault({ method: 'Certs', code: 14, times: 1, message: 'try later' })
  const res = await fetch(emu.certsUrl)
  t.equal(res.status, 503)
  t.same(await res.json(), { error: { code: 503, message: 'try later', status: 'UNAVAILABLE' } })
  const verifier = new GoogleIdTokenVerifier({ certsUrl: emu.certsUrl, audience: AUDIENCE })
  emu.addFault({ method: 'Certs', code: 14 })
  const error = await verifier.verify(emu.idToken(INVOKER, AUDIENCE)).catch((e: unknown) => e)
  emu.clearFaults()
  t.ok(error instanceof GoogleCertsUnavailable, 'a verifier sees the outage as Google\'s certificates being unavailable')
  t.ok(emu.calls().Certs > 2, 'every attempt was counted (the library retries a 503)')
  const missing = await fetch(`${emu.httpUrl}/v1/nothing-here`)
  t.equal(missing.status, 404)
  t.match(await missing.json(), { error: { code: 404, status: 'NOT_FOUND' } })
})
