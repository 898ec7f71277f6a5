// Google's side of ID tokens, on loopback: an HTTP endpoint serving `{kid: public key PEM}` as
// https://www.googleapis.com/oauth2/v1/certs does, and RS256 tokens signed with the matching
// private key. google-auth-library verifies them exactly as it verifies Google's own.
import type { Test } from 'tap'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'

export const AUDIENCE = 'https://pushpool-test.a.run.app'
export const ADMIN_EMAIL = 'ops@example.com'
export const SCHEDULER_EMAIL = 'scheduler@proj-test.iam.gserviceaccount.com'

export interface Claims {
  iss?: string
  aud?: string
  email?: string
  email_verified?: boolean
  iat?: number
  exp?: number
  sub?: string
}

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

const keyPair = (): { privateKey: KeyObject, publicKey: KeyObject } => generateKeyPairSync('rsa', { modulusLength: 2048 })

export async function serveGoogleCerts (t: Test): Promise<GoogleCerts> {
  const served = keyPair()
  const other = keyPair()
  const kid = randomBytes(20).toString('hex')
  const body = JSON.stringify({ [kid]: served.publicKey.export({ type: 'spki', format: 'pem' }) })
  let fetches = 0
  const server = createServer((_req, res) => {
    fetches++
    // As Google does: the library caches the certificates for max-age.
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=3600' }).end(body)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  return {
    certsUrl: `http://127.0.0.1:${port}/oauth2/v1/certs`,
    fetches: () => fetches,
    token: claims => signToken(served.privateKey, kid, claims),
    forgedToken: claims => signToken(other.privateKey, kid, claims),
    unknownKeyToken: claims => signToken(served.privateKey, 'not-a-served-kid', claims)
  }
}

function signToken (key: KeyObject, kid: string, overrides: Claims = {}): string {
  const now = Math.floor(Date.now() / 1000)
  const claims: Claims = {
    iss: 'https://accounts.google.com',
    aud: AUDIENCE,
    sub: '1234567890',
    email: ADMIN_EMAIL,
    email_verified: true,
    iat: now,
    exp: now + 3600,
    ...overrides
  }
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const signingInput = `${encode({ alg: 'RS256', typ: 'JWT', kid })}.${encode(claims)}`
  return `${signingInput}.${sign('RSA-SHA256', Buffer.from(signingInput), key).toString('base64url')}`
}
