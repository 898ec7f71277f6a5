// Google's side of ID tokens, on loopback: an HTTP endpoint serving the emulator's ID-token
// certificates as https://www.googleapis.com/oauth2/v1/certs does, and tokens signed with the
// matching key (src/emulator/id-tokens.ts). google-auth-library verifies them exactly as it
// verifies Google's own. A bare server rather than the whole emulator: these tests need no gRPC.
import type { Test } from 'tap'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { IdTokenIssuer, type IdTokenClaims } from '../../src/emulator/id-tokens.ts'
import { CERTS_CACHE_CONTROL, CERTS_PATH } from '../../src/emulator/oauth2.ts'

export const AUDIENCE = 'https://pushpool-test.a.run.app'
export const ADMIN_EMAIL = 'ops@example.com'
export const SCHEDULER_EMAIL = 'scheduler@proj-test.iam.gserviceaccount.com'

export type Claims = IdTokenClaims

export interface GoogleCerts {
  certsUrl: string
  /** How many times the certificates were fetched. */
  fetches: () => number
  /** A token signed with the served key; `claims` override a valid admin token's. */
  token: (claims?: Claims) => string
  /** A token with the served key id but signed by another key. */
  forgedToken: (claims?: Claims) => string
  /** A token signed with a key id the endpoint does not serve. */
  unknownKeyToken: (claims?: Claims) => string
}

export async function serveGoogleCerts (t: Test): Promise<GoogleCerts> {
  const served = await IdTokenIssuer.create()
  const other = await IdTokenIssuer.create({ kid: served.kid })
  const body = served.pemCertificates()
  let fetches = 0
  const server = createServer((_req, res) => {
    fetches++
    // As Google does: the library caches the certificates for max-age.
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': CERTS_CACHE_CONTROL }).end(body)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  return {
    certsUrl: `http://127.0.0.1:${port}${CERTS_PATH.pem}`,
    fetches: () => fetches,
    token: claims => served.sign(adminClaims(claims)),
    forgedToken: claims => other.sign(adminClaims(claims)),
    unknownKeyToken: claims => served.sign(adminClaims(claims), 'not-a-served-kid')
  }
}

function adminClaims (overrides: Claims = {}): Claims {
  const now = Math.floor(Date.now() / 1000)
  return {
    iss: 'https://accounts.google.com',
    aud: AUDIENCE,
    sub: '1234567890',
    email: ADMIN_EMAIL,
    email_verified: true,
    iat: now,
    exp: now + 3600,
    ...overrides
  }
}
