// Google ID tokens (Cloud Scheduler's OIDC token, `gcloud auth print-identity-token`, a service
// account's), verified with google-auth-library: signature against Google's certificates, expiry,
// issuer, and our audience. The library caches the certificates for as long as Google's
// Cache-Control allows, so one client is kept for the life of the process. The library is
// imported on the first token to check, not at start-up: it costs ~60 ms and ~20 MB to load, and
// most requests (webhooks, admin tokens, probes) never need it.
import type { OAuth2Client } from 'google-auth-library'

export interface GoogleIdentity {
  /** The token's `email` claim, lower-cased; null when the token carries none. */
  email: string | null
  /** Whether Google vouches for the email (`email_verified: true`). */
  emailVerified: boolean
}

/** The token is not a Google ID token for our audience: malformed, badly signed, expired, or meant for someone else. */
export class InvalidIdToken extends Error {
  constructor (reason: string) {
    super(reason)
    this.name = 'InvalidIdToken'
  }
}

/** Google's certificates could not be fetched, so no token can be checked right now. */
export class GoogleCertsUnavailable extends Error {
  constructor (options: { cause: unknown }) {
    super('Google\'s ID-token certificates could not be fetched', options)
    this.name = 'GoogleCertsUnavailable'
  }
}

export interface GoogleIdTokenVerifierOptions {
  /** Where the PEM certificates are served (PUSHPOOL_GOOGLE_CERTS_URL). */
  certsUrl: string
  /** The `aud` a token must carry (PUSHPOOL_AUDIENCE). */
  audience: string
}

// The library prefixes this to every failure to fetch the certificates, and to nothing else.
const CERTS_FAILURE = 'Failed to retrieve verification certificates'

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

export class GoogleIdTokenVerifier {
  #client: Promise<OAuth2Client> | null = null
  readonly #certsUrl: string
  readonly #audience: string

  constructor (options: GoogleIdTokenVerifierOptions) {
    this.#certsUrl = options.certsUrl
    this.#audience = options.audience
  }

  /** Whether a bearer credential has the shape of a JWT, so is worth checking against Google. */
  static looksLikeToken (credential: string): boolean {
    return JWT_SHAPE.test(credential)
  }

  /** The identity a valid token asserts; rejects with InvalidIdToken or GoogleCertsUnavailable. */
  async verify (idToken: string): Promise<GoogleIdentity> {
    this.#client ??= import('google-auth-library').then(({ OAuth2Client }) =>
      new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: this.#certsUrl } }))
    const client = await this.#client
    let payload
    try {
      payload = (await client.verifyIdToken({ idToken, audience: this.#audience })).getPayload()
    } catch (err) {
      if (err instanceof Error && err.message.startsWith(CERTS_FAILURE)) throw new GoogleCertsUnavailable({ cause: err })
      throw new InvalidIdToken(reasonOf(err))
    }
    if (payload === undefined) throw new InvalidIdToken('Token has no payload')
    return {
      email: typeof payload.email === 'string' ? payload.email.toLowerCase() : null,
      emailVerified: payload.email_verified === true
    }
  }
}

/**
 * The library's reason without what follows it: several of its messages go on to quote the whole
 * token or its payload, which must not reach a log.
 */
function reasonOf (err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return message.split(/[:,]/)[0].trim().slice(0, 120)
}
