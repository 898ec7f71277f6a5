// Google's side of ID tokens: an RS256 key, tokens shaped as Google mints them for a service
// account (Cloud Tasks' and Cloud Scheduler's OIDC tokens, IAM generateIdToken, the metadata
// server), and the key served as https://www.googleapis.com/oauth2/v1/certs and /oauth2/v3/certs
// serve Google's. google-auth-library's OAuth2Client.verifyIdToken checks these tokens exactly as it
// checks Google's own.
import { createHash, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto'

/** The claims of a Google ID token; `undefined` leaves a claim out. */
export interface IdTokenClaims {
  iss?: string
  aud?: string
  azp?: string
  sub?: string
  email?: string
  email_verified?: boolean
  iat?: number
  exp?: number
}

export interface ServiceAccountToken {
  email: string
  audience: string
  /** Default 3600 s, as Google's. */
  lifetimeSeconds?: number
  /** Default true; without it the token names the account only by its numeric id (generateIdToken's includeEmail) */
  includeEmail?: boolean
}

const GOOGLE_ISSUER = 'https://accounts.google.com'

export class IdTokenIssuer {
  readonly kid: string
  readonly #privateKey: KeyObject
  readonly #publicKey: KeyObject

  /** Generates the key off the main thread (~40 ms), so callers can overlap it with other start-up work. */
  static create (options: { kid?: string } = {}): Promise<IdTokenIssuer> {
    return new Promise((resolve, reject) => {
      generateKeyPair('rsa', { modulusLength: 2048 }, (error, publicKey, privateKey) =>
        error ? reject(error) : resolve(new IdTokenIssuer(options.kid ?? randomBytes(20).toString('hex'), privateKey, publicKey)))
    })
  }

  private constructor (kid: string, privateKey: KeyObject, publicKey: KeyObject) {
    this.kid = kid
    this.#privateKey = privateKey
    this.#publicKey = publicKey
  }

  /**
   * A token for a service account as Google mints it (includeEmail: true): `azp` and `sub` carry the
   * account's numeric unique ID, `email_verified` is true.
   * See https://cloud.google.com/docs/authentication/token-types#id-contents and
   * https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateIdToken
   */
  mint ({ email, audience, lifetimeSeconds = 3600, includeEmail = true }: ServiceAccountToken): string {
    const iat = Math.floor(Date.now() / 1000)
    const id = serviceAccountUniqueId(email)
    return this.sign({
      aud: audience,
      azp: id,
      ...(includeEmail ? { email, email_verified: true } : {}),
      exp: iat + lifetimeSeconds,
      iat,
      iss: GOOGLE_ISSUER,
      sub: id
    })
  }

  /** Signs any claims (tests forge expired, misaddressed or foreign tokens with it); `kid` names the key in the header. */
  sign (claims: IdTokenClaims, kid = this.kid): string {
    const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
    const signingInput = `${encode({ alg: 'RS256', kid, typ: 'JWT' })}.${encode(claims)}`
    return `${signingInput}.${sign('RSA-SHA256', Buffer.from(signingInput), this.#privateKey).toString('base64url')}`
  }

  /** The /oauth2/v1/certs body: `{kid: PEM}`. Google serves X.509 certificates there; the public key in
   *  PEM is what they carry and what google-auth-library hands to crypto.verify, so it verifies the same. */
  pemCertificates (): string {
    return JSON.stringify({ [this.kid]: this.#publicKey.export({ type: 'spki', format: 'pem' }) })
  }

  /** The /oauth2/v3/certs body: a JWK set. */
  jwkCertificates (): string {
    const { n, e } = this.#publicKey.export({ format: 'jwk' })
    return JSON.stringify({ keys: [{ kty: 'RSA', alg: 'RS256', use: 'sig', kid: this.kid, n, e }] })
  }
}

/** A stable 21-digit numeric ID per account, the shape of a service account's unique ID. */
export function serviceAccountUniqueId (email: string): string {
  const digest = createHash('sha256').update(email.toLowerCase()).digest('hex')
  return `1${(BigInt(`0x${digest}`) % 10n ** 20n).toString().padStart(20, '0')}`
}
