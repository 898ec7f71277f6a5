// Where the emulator's ID-token key is published, at the paths of Google's own:
// https://www.googleapis.com/oauth2/v1/certs (PEM by key id, what google-auth-library's
// OAuth2Client fetches by default and what PUSHPOOL_GOOGLE_CERTS_URL points at) and
// https://www.googleapis.com/oauth2/v3/certs (JWK set).
import type { HttpAnswer, Route } from './http.ts'
import type { IdTokenIssuer } from './id-tokens.ts'

export const CERTS_PATH = { pem: '/oauth2/v1/certs', jwk: '/oauth2/v3/certs' } as const

/** Google lets clients cache its certificates for hours; the library honours max-age. */
export const CERTS_CACHE_CONTROL = 'public, max-age=21600, must-revalidate, no-transform'

const SERVICE = 'www.googleapis.com'

export function oauth2Routes (issuer: IdTokenIssuer): Route[] {
  const answer = (body: string): HttpAnswer =>
    ({ body, headers: { 'content-type': 'application/json; charset=UTF-8', 'cache-control': CERTS_CACHE_CONTROL } })
  return [
    { method: 'GET', path: new RegExp(`^${CERTS_PATH.pem}$`), name: 'Certs', service: SERVICE, handle: () => answer(issuer.pemCertificates()) },
    { method: 'GET', path: new RegExp(`^${CERTS_PATH.jwk}$`), name: 'Certs', service: SERVICE, handle: () => answer(issuer.jwkCertificates()) }
  ]
}
