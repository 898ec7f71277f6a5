// Keyless launches: a source identity (normally pushpool's own, from the metadata server) asks IAM
// Credentials for a short-lived token of another service account, through google-auth-library's
// Impersonated client (POST …/serviceAccounts/{email}:generateAccessToken). The source needs
// roles/iam.serviceAccountTokenCreator on that account, and nothing else of it.
// https://cloud.google.com/iam/docs/create-short-lived-credentials-direct
import type { AuthClient } from 'google-auth-library'
import { CredentialsError, RetryLater } from '../failures.ts'

export const SCOPES = ['https://www.googleapis.com/auth/cloud-platform']

/** A token lives an hour (IAM's maximum without an organization policy); the client mints the next ~5 min before. */
const LIFETIME_SECONDS = 3600

/** How long a launch waits for a token (the library retries 5xx and 429 within it) before it is retried later. */
export const TOKEN_WAIT_MS = 10_000

/**
 * The Impersonated client for `target` on the source's auth client; built once per cached identity.
 * `fromKey`: the source is a service-account key rather than pushpool's own identity.
 */
export async function impersonating (sourceClient: AuthClient | null, fromKey: boolean, target: string, endpoint: string | null): Promise<AuthClient> {
  if (sourceClient === null) {
    // Only emulated mode leaves a source without an auth client (credentials.ts).
    throw new CredentialsError(!fromKey
      ? `Impersonating ${target} in emulated mode starts from pushpool's own identity on the emulator's metadata server: ` +
        'set GCE_METADATA_HOST to the emulator\'s HTTP host:port'
      : `Impersonating ${target} in emulated mode cannot start from a service-account key (its tokens come from Google's ` +
        'OAuth endpoint): leave the key out, so impersonation starts from pushpool\'s own identity')
  }
  const { Impersonated } = await import('google-auth-library')
  return withoutConstructorWarning(() => new Impersonated({
    sourceClient,
    targetPrincipal: target,
    targetScopes: SCOPES,
    lifetime: LIFETIME_SECONDS,
    ...(endpoint !== null ? { endpoint } : {})
  }))
}

/**
 * Gets (or reuses, until it is about to expire) the source's token, then the impersonated account's,
 * so that a refused grant fails the launch before any Cloud Run call. A refusal is permanent, and
 * its message names the grant that mends it; an outage is RetryLater. No token is kept or shown.
 */
export async function mintOrExplain (sourceClient: AuthClient, impersonated: AuthClient, target: string): Promise<void> {
  try {
    await withinWait(sourceClient.getAccessToken(), 'pushpool\'s own credentials')
  } catch (err) {
    throw explainFailure(err, `pushpool's own credentials could not get a token to impersonate ${target} with`, null)
  }
  try {
    await withinWait(impersonated.getAccessToken(), 'IAM Credentials')
  } catch (err) {
    const principal = await principalOf(sourceClient)
    const grant = `grant roles/iam.serviceAccountTokenCreator on ${target} to ${principal ?? 'the service account pushpool runs as'}` +
      (principal === null ? '' : ` (gcloud iam service-accounts add-iam-policy-binding ${target} --member=serviceAccount:${principal} --role=roles/iam.serviceAccountTokenCreator)`)
    throw explainFailure(err, `pushpool could not impersonate ${target} (job variable impersonate_service_account)`, grant)
  }
}

/**
 * What a failed token request means. IAM Credentials and Google's token endpoints answer a refusal
 * (no grant, no such account, a disabled key, a malformed request) with 400, 403 or 404, and it
 * stays refused however often it is asked; anything else (no answer, 401 for a source token it no
 * longer takes, 429, 5xx) may pass, so the launch is retried later.
 */
export function explainFailure (err: unknown, what: string, fix: string | null): CredentialsError | RetryLater {
  const status = httpStatusOf(err)
  const reason = err instanceof Error ? err.message : String(err)
  // The failed request is not kept as the cause: it holds the source's bearer token.
  if (status === 400 || status === 403 || status === 404) return new CredentialsError(`${what}: ${reason}${fix === null ? '' : `; ${fix}`}`)
  return new RetryLater(`${what}: ${reason}`)
}

function httpStatusOf (err: unknown): number | null {
  const { status, response } = (err ?? {}) as { status?: unknown, response?: { status?: unknown } }
  const found = status ?? response?.status
  return typeof found === 'number' ? found : null
}

/** The email the source identity acts as, when it can be known; null otherwise (a user's gcloud login, an outage). */
async function principalOf (client: AuthClient): Promise<string | null> {
  const { Compute, gcpMetadata, JWT } = await import('google-auth-library')
  if (client instanceof JWT) return client.email ?? null
  if (client instanceof Compute) {
    return await withinWait(gcpMetadata.instance('service-accounts/default/email') as Promise<unknown>, 'the metadata server')
      .then(email => typeof email === 'string' ? email : null, () => null)
  }
  return null
}

/** Settles with `promise`, or rejects with RetryLater once TOKEN_WAIT_MS have passed; the late result is dropped. */
async function withinWait<T> (promise: Promise<T>, who: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new RetryLater(`${who} did not answer within ${TOKEN_WAIT_MS / 1000} s`)), TOKEN_WAIT_MS)
  })
  promise.catch(() => {})
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Impersonated's constructor writes a plain-text warning to stderr each time, about credential
 * configurations taken from an untrusted source carrying a malicious URL. pushpool builds this one
 * itself (the endpoint from its own configuration, the target a checked service-account email), so
 * the warning does not apply, and a plain-text line would break its JSON log stream: that warning,
 * and only it, is dropped. The constructor is synchronous, so nothing else can warn meanwhile.
 */
function withoutConstructorWarning<T> (make: () => T): T {
  const warn = console.warn
  console.warn = (...args: unknown[]) => {
    if (!(typeof args[0] === 'string' && args[0].startsWith('The `Impersonated` constructor does not validate'))) warn(...args)
  }
  try {
    return make()
  } finally {
    console.warn = warn
  }
}
