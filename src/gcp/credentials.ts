// Where the GCP identity for a launch comes from, in order: the pool's GCP Credentials block, the
// service-account key in PUSHPOOL_GCP_CREDENTIALS_SECRET, then Application Default Credentials.
// Each distinct identity gets one cached auth client; keys are never logged or returned.
import { createHash } from 'node:crypto'
import type { AuthClient } from 'google-auth-library'
import { CredentialsError } from '../failures.ts'

export interface ServiceAccountKey {
  client_email: string
  private_key: string
  private_key_id?: string
  project_id?: string
}

export interface GcpIdentity {
  /** Stable cache key for this identity: a hash, never the key material. */
  id: string
  /** Where it came from, for the dispatch record. */
  source: 'credentials-block' | 'credentials-secret' | 'adc'
  project: string
  authClient: AuthClient | null
}

export interface IdentityResolverOptions {
  credentialsSecret: string | null
  fallbackProject: string | null
  /** Cloud Run is an emulator on a plaintext channel: no auth client is needed, and probing ADC would reach for Google's metadata server. */
  emulated: boolean
  /** Reads a Secret Manager secret version's payload as text. */
  readSecret: (name: string) => Promise<string>
}

const SCOPES = ['https://www.googleapis.com/auth/cloud-platform']

export class IdentityResolver {
  private readonly options: IdentityResolverOptions
  private readonly cache = new Map<string, Promise<GcpIdentity>>()

  constructor (options: IdentityResolverOptions) {
    this.options = options
  }

  /** `block` is the resolved `credentials` job variable (a GCP Credentials block's data) or null. */
  resolve (block: Record<string, unknown> | null): Promise<GcpIdentity> {
    const key = block === null ? null : serviceAccountInfo(block)
    if (block !== null && key !== null) {
      const project = stringField(block, 'project') ?? key.project_id ?? this.options.fallbackProject
      return this.cached(fingerprint(key, project), () => fromKey(key, project, 'credentials-block'))
    }
    const blockProject = block === null ? null : stringField(block, 'project')
    if (this.options.credentialsSecret !== null) {
      const secret = this.options.credentialsSecret
      return this.cached(`secret:${secret}:${blockProject ?? ''}`, async () => {
        const text = await this.options.readSecret(secret)
        const secretKey = parseKey(text, `the secret ${secret}`)
        return await fromKey(secretKey, blockProject ?? secretKey.project_id ?? this.options.fallbackProject, 'credentials-secret')
      })
    }
    const project = blockProject ?? this.options.fallbackProject
    if (this.options.emulated) {
      return this.cached(`emulated:${project ?? ''}`, async () => ({ id: '', source: 'adc', project: requireProject(project), authClient: null }))
    }
    return this.cached(`adc:${project ?? ''}`, () => fromAdc(project))
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

async function fromKey (key: ServiceAccountKey, project: string | null, source: GcpIdentity['source']): Promise<GcpIdentity> {
  const { JWT } = await import('google-auth-library')
  const authClient = new JWT({ email: key.client_email, key: key.private_key, keyId: key.private_key_id, scopes: SCOPES })
  return { id: '', source, project: requireProject(project), authClient }
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
  return { id: '', source: 'adc', project: requireProject(resolvedProject), authClient }
}
