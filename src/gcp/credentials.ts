// Where the GCP identity for a launch comes from, in order: the pool's GCP Credentials block, the
// service-account key in PUSHPOOL_GCP_CREDENTIALS_SECRET, then Application Default Credentials
// (on Cloud Run: the metadata server, pushpool's own service account). When the job variables name
// an account to impersonate, that identity only mints the account's tokens through IAM Credentials
// (impersonation.ts), so no key need sit anywhere.
// Each distinct identity gets one cached auth client; keys and tokens are never logged or returned.
//
// Emulated mode (PUSHPOOL_CLOUD_RUN_ENDPOINT set) never reaches Google: a key's tokens would come
// from Google's OAuth endpoint, so a key gives no auth client there; pushpool's own identity is the
// emulator's metadata server when GCE_METADATA_HOST names it, through google-auth-library's Compute
// client as on Cloud Run (not GoogleAuth, whose detection would take a developer's gcloud login
// first), and none otherwise.
import { createHash } from 'node:crypto'
import type { AuthClient } from 'google-auth-library'
import { CredentialsError } from '../failures.ts'
import { impersonating, mintOrExplain, SCOPES } from './impersonation.ts'

export interface ServiceAccountKey {
  client_email: string
  private_key: string
  private_key_id?: string
  project_id?: string
}

export interface GcpIdentity {
  /** Stable cache key for this identity: a hash, never the key material. */
  id: string
  /** Where it came from, for the dispatch record; an impersonated identity keeps its source's. */
  source: 'credentials-block' | 'credentials-secret' | 'adc'
  /** The service account this identity impersonates through IAM Credentials, or null for the source itself. */
  impersonated: string | null
  project: string
  /** Null only in emulated mode, for an identity the emulator cannot stand in for. */
  authClient: AuthClient | null
}

export interface IdentityResolverOptions {
  credentialsSecret: string | null
  fallbackProject: string | null
  /** Cloud Run is an emulator on a plaintext channel: no Google host may be reached (see above). */
  emulated: boolean
  /** IAM Credentials' base URL (PUSHPOOL_IAM_CREDENTIALS_ENDPOINT); null: Google's. */
  iamCredentialsEndpoint: string | null
  /** Reads a Secret Manager secret version's payload as text. */
  readSecret: (name: string) => Promise<string>
}


export class IdentityResolver {
  private readonly options: IdentityResolverOptions
  private readonly cache = new Map<string, Promise<GcpIdentity>>()

  constructor (options: IdentityResolverOptions) {
    this.options = options
  }

  /**
   * `block` is the resolved `credentials` job variable (a GCP Credentials block's data) or null;
   * `impersonate` the `impersonate_service_account` job variable. An impersonated identity has a
   * token of the account in hand before it is returned, so a missing grant fails before any Cloud
   * Run call: a refusal as a CredentialsError that names the grant, an outage as RetryLater.
   */
  async resolve (block: Record<string, unknown> | null, impersonate: string | null = null): Promise<GcpIdentity> {
    const source = await this.source(block)
    if (impersonate === null) return source
    const { emulated, iamCredentialsEndpoint } = this.options
    if (emulated && iamCredentialsEndpoint === null) {
      throw new CredentialsError(`Impersonating ${impersonate} needs PUSHPOOL_IAM_CREDENTIALS_ENDPOINT in emulated mode ` +
        '(PUSHPOOL_CLOUD_RUN_ENDPOINT is set): set it to the emulator\'s HTTP URL')
    }
    const identity = await this.cached(`${source.id}>${impersonate}`, async () => ({
      ...source,
      impersonated: impersonate,
      authClient: await impersonating(source.authClient, source.source !== 'adc', impersonate, iamCredentialsEndpoint)
    }))
    // Both have an auth client once impersonating() has made one.
    await mintOrExplain(source.authClient as AuthClient, identity.authClient as AuthClient, impersonate)
    return identity
  }

  private source (block: Record<string, unknown> | null): Promise<GcpIdentity> {
    const key = block === null ? null : serviceAccountInfo(block)
    if (block !== null && key !== null) {
      const project = stringField(block, 'project') ?? key.project_id ?? this.options.fallbackProject
      return this.cached(fingerprint(key, project), () => this.fromKey(key, project, 'credentials-block'))
    }
    const blockProject = block === null ? null : stringField(block, 'project')
    if (this.options.credentialsSecret !== null) {
      const secret = this.options.credentialsSecret
      return this.cached(`secret:${secret}:${blockProject ?? ''}`, async () => {
        const text = await this.options.readSecret(secret)
        const secretKey = parseKey(text, `the secret ${secret}`)
        return await this.fromKey(secretKey, blockProject ?? secretKey.project_id ?? this.options.fallbackProject, 'credentials-secret')
      })
    }
    const project = blockProject ?? this.options.fallbackProject
    if (this.options.emulated) return this.cached(`emulated:${project ?? ''}`, () => fromEmulatedMetadata(project))
    return this.cached(`adc:${project ?? ''}`, () => fromAdc(project))
  }

  private async fromKey (key: ServiceAccountKey, project: string | null, source: GcpIdentity['source']): Promise<GcpIdentity> {
    if (this.options.emulated) return { id: '', source, impersonated: null, project: requireProject(project), authClient: null }
    const { JWT } = await import('google-auth-library')
    const authClient = new JWT({ email: key.client_email, key: key.private_key, keyId: key.private_key_id, scopes: SCOPES })
    return { id: '', source, impersonated: null, project: requireProject(project), authClient }
  }

  private cached (id: string, make: () => Promise<GcpIdentity>): Promise<GcpIdentity> {
    let identity = this.cache.get(id)
    if (identity === undefined) {
      identity = make().then(found => ({ ...found, id }))
      // A failed lookup must not poison the cache: the next dispatch tries again.
      identity.catch(() => this.cache.delete(id))
      this.cache.set(id, identity)
    }
    return identity
  }
}

function stringField (record: Record<string, unknown>, field: string): string | null {
  const value = record[field]
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null
}

function serviceAccountInfo (block: Record<string, unknown>): ServiceAccountKey | null {
  const info = block.service_account_info
  if (info === undefined || info === null) {
    if (typeof block.service_account_file === 'string') {
      throw new CredentialsError(
        'The GCP Credentials block sets service_account_file, which names a file on a worker\'s disk that pushpool cannot read: ' +
        'paste the key into service_account_info instead, or leave both empty to use pushpool\'s own identity')
    }
    return null
  }
  if (typeof info === 'string') return parseKey(info, 'the GCP Credentials block\'s service_account_info')
  if (typeof info === 'object') return validateKey(info as Record<string, unknown>, 'the GCP Credentials block\'s service_account_info')
  throw new CredentialsError('The GCP Credentials block\'s service_account_info must be a service-account key (JSON object)')
}

function parseKey (text: string, where: string): ServiceAccountKey {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new CredentialsError(`${where} is not JSON: store a service-account key file's contents there`)
  }
  if (parsed === null || typeof parsed !== 'object') {
    throw new CredentialsError(`${where} must be a JSON object: store a service-account key file's contents there`)
  }
  return validateKey(parsed as Record<string, unknown>, where)
}

function validateKey (key: Record<string, unknown>, where: string): ServiceAccountKey {
  const missing = ['client_email', 'private_key'].filter(f => typeof key[f] !== 'string' || key[f] === '')
  if (missing.length > 0) {
    throw new CredentialsError(`${where} is not a service-account key: it lacks ${missing.join(' and ')}`)
  }
  return key as unknown as ServiceAccountKey
}

function fingerprint (key: ServiceAccountKey, project: string | null): string {
  return 'key:' + createHash('sha256').update(`${key.client_email}\0${key.private_key_id ?? key.private_key}\0${project ?? ''}`)
    .digest('hex').slice(0, 16)
}

function requireProject (project: string | null): string {
  if (project === null) {
    throw new CredentialsError(
      'No GCP project is known: set "project" in the GCP Credentials block, use a key with project_id, or set PUSHPOOL_GCP_PROJECT')
  }
  return project
}

async function fromAdc (project: string | null): Promise<GcpIdentity> {
  const { GoogleAuth } = await import('google-auth-library')
  const auth = new GoogleAuth({ scopes: SCOPES })
  let resolvedProject = project
  let authClient: AuthClient
  try {
    authClient = await auth.getClient()
    resolvedProject ??= await auth.getProjectId()
  } catch (err) {
    throw new CredentialsError(
      'No GCP credentials were found: reference a GCP Credentials block in the pool\'s "credentials" variable, ' +
      'set PUSHPOOL_GCP_CREDENTIALS_SECRET, or run pushpool with a service account (Application Default Credentials)',
      { cause: err })
  }
  return { id: '', source: 'adc', impersonated: null, project: requireProject(resolvedProject), authClient }
}

/**
 * gcp-metadata reads these on every request (`getBaseUrl` in node_modules/gcp-metadata), so this
 * check and the client's requests cannot disagree; without one it would go to 169.254.169.254.
 */
function metadataServerOverride (): string | null {
  return process.env.GCE_METADATA_IP || process.env.GCE_METADATA_HOST || null
}

async function fromEmulatedMetadata (project: string | null): Promise<GcpIdentity> {
  let authClient: AuthClient | null = null
  if (metadataServerOverride() !== null) {
    const { Compute } = await import('google-auth-library')
    authClient = new Compute({ scopes: SCOPES })
  }
  return { id: '', source: 'adc', impersonated: null, project: requireProject(project), authClient }
}
