// The IAM Service Account Credentials API on the emulator's HTTP side, as google-auth-library's
// Impersonated client calls it: POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken and
// :generateIdToken (https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts).
// The caller is whoever its bearer token was issued to (the metadata server's tokens and
// accessToken()'s stand for the workload's account, tokens this API issues for the account they
// were issued for); the gRPC services take the same tokens (principalOf). Each hop of the
// chain caller → delegates… → target needs roles/iam.serviceAccountTokenCreator on the next account;
// a missing grant is PERMISSION_DENIED with Google's message and ErrorInfo, as for an account that
// does not exist.
import { randomBytes } from 'node:crypto'
import { durationMs } from './durations.ts'
import { bearerToken, jsonBody, type HttpCall, type Route } from './http.ts'
import { serviceAccountUniqueId, type IdTokenIssuer } from './id-tokens.ts'
import { invalidArgument, permissionDenied, unauthenticated } from './rpc-error.ts'

/** Service account → the members (`serviceAccount:…`, `user:…` or a bare email) holding roles/iam.serviceAccountTokenCreator on it. */
export type TokenCreators = Record<string, string[]>

const SERVICE = 'iamcredentials.googleapis.com'
const ACCOUNT_NAME = /^projects\/([^/]+)\/serviceAccounts\/([^/]+)$/
/** Without the constraints/iam.allowServiceAccountCredentialLifetimeExtension organization policy. */
const MAX_LIFETIME_MS = 3600_000

interface IssuedToken {
  principal: string
  expiresAt: number
}

export class IamCredentials {
  readonly #issuer: IdTokenIssuer
  /** Lower-cased account → lower-cased member emails */
  readonly #creators = new Map<string, Set<string>>()
  readonly #tokens = new Map<string, IssuedToken>()

  constructor (issuer: IdTokenIssuer, creators: TokenCreators = {}) {
    this.#issuer = issuer
    for (const [account, members] of Object.entries(creators)) {
      for (const member of members) this.grantTokenCreator(account, member)
    }
  }

  grantTokenCreator (serviceAccount: string, member: string): void {
    const account = serviceAccount.toLowerCase()
    const holders = this.#creators.get(account) ?? new Set<string>()
    holders.add(member.replace(/^(serviceAccount|user):/, '').toLowerCase())
    this.#creators.set(account, holders)
  }

  /** An OAuth access token the emulator's APIs take as `principal`'s. */
  accessToken (principal: string, lifetimeMs = MAX_LIFETIME_MS): { accessToken: string, expireTime: string } {
    const accessToken = `ya29.emulator-${randomBytes(24).toString('base64url')}`
    const expiresAt = Date.now() + lifetimeMs
    this.#tokens.set(accessToken, { principal: principal.toLowerCase(), expiresAt })
    return { accessToken, expireTime: new Date(Math.floor(expiresAt / 1000) * 1000).toISOString().replace('.000Z', 'Z') }
  }

  /** Whose a bearer token is; a token the emulator never issued, or one expired, is refused as Google refuses it. */
  principalOf (token: string): string {
    const issued = this.#tokens.get(token)
    if (!issued || issued.expiresAt <= Date.now()) {
      throw unauthenticated('Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.')
    }
    return issued.principal
  }

  routes (): Route[] {
    return [
      this.#route('generateAccessToken', 'GenerateAccessToken', 'iam.serviceAccounts.getAccessToken', (target, body) => {
        const scope = body.scope
        if (!Array.isArray(scope) || scope.length === 0 || scope.some(s => typeof s !== 'string')) {
          throw invalidArgument('scope: at least one OAuth scope is required.')
        }
        const lifetimeMs = body.lifetime === undefined ? MAX_LIFETIME_MS : durationMs(String(body.lifetime))
        if (lifetimeMs < 1000 || lifetimeMs > MAX_LIFETIME_MS) {
          throw invalidArgument(`lifetime must be between 1s and 3600s, got ${String(body.lifetime)}; beyond 3600s needs the ` +
            'constraints/iam.allowServiceAccountCredentialLifetimeExtension organization policy.')
        }
        return this.accessToken(target, lifetimeMs)
      }),
      this.#route('generateIdToken', 'GenerateIdToken', 'iam.serviceAccounts.getOpenIdToken', (target, body) => {
        if (typeof body.audience !== 'string' || body.audience === '') throw invalidArgument('audience is required.')
        return { token: this.#issuer.mint({ email: target, audience: body.audience, includeEmail: body.includeEmail === true }) }
      })
    ]
  }

  /** POST /v1/projects/-/serviceAccounts/{account}:{action}, answered once the caller may act as the account. */
  #route (action: string, name: string, permission: string,
    answer: (target: string, body: Record<string, unknown>) => object): Route {
    return {
      method: 'POST',
      path: new RegExp(`^/v1/(projects/[^/]+/serviceAccounts/[^/:]+):${action}$`),
      name,
      service: SERVICE,
      handle: call => {
        const body = jsonBody(call)
        return { body: answer(this.#authorize(call, permission, body.delegates), body) }
      }
    }
  }

  /** The target account's email, once the caller has been let through every hop of the chain. */
  #authorize (call: HttpCall, permission: string, delegates: unknown): string {
    const caller = this.principalOf(bearerToken(call))
    const target = this.#accountOf(call.params[0], 'name')
    if (delegates !== undefined && !Array.isArray(delegates)) throw invalidArgument('delegates must be a list of service account names.')
    const chain = [...(delegates ?? []).map(delegate => this.#accountOf(delegate, 'delegates')), target]
    let holder = caller
    for (const account of chain) {
      if (!this.#creators.get(account)?.has(holder)) {
        throw permissionDenied(`Permission '${permission}' denied on resource (or it may not exist).`, [{
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'IAM_PERMISSION_DENIED',
          domain: 'iam.googleapis.com',
          metadata: { permission }
        }])
      }
      holder = account
    }
    return target
  }

  /** `projects/-/serviceAccounts/{email or unique id}` → the account's email, lower-cased. */
  #accountOf (name: unknown, field: string): string {
    const m = typeof name === 'string' ? ACCOUNT_NAME.exec(name) : null
    if (!m || m[1] !== '-') {
      throw invalidArgument(`${field}: '${String(name)}' is not projects/-/serviceAccounts/{ACCOUNT_EMAIL_OR_UNIQUEID}; ` +
        'the - wildcard is required, a project ID in its place is invalid.')
    }
    const id = m[2].toLowerCase()
    if (id.includes('@')) return id
    return [...this.#creators.keys()].find(account => serviceAccountUniqueId(account) === id) ?? id
  }
}
