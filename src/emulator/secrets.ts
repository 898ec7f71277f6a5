// Secret Manager's secrets and versions, shared by the SecretManagerService RPCs and by executions
// resolving `valueSource.secretKeyRef` env vars.
import { crc32c } from './crc32c.ts'
import { newEtag } from './ids.ts'
import { alreadyExists, invalidArgument, notFound } from './rpc-error.ts'
import type { SecretKeySelector } from './types.ts'

export interface Secret {
  name: string
  createTime: string
  replication: Record<string, unknown>
  labels?: Record<string, string>
  etag: string
  [key: string]: unknown
}

export interface SecretVersion {
  name: string
  createTime: string
  state: 'ENABLED'
  etag: string
  clientSpecifiedPayloadChecksum: boolean
}

export interface AccessedSecretVersion {
  name: string
  payload: { data: Buffer, dataCrc32c: string }
}

export interface SecretPayloadInput {
  data?: Uint8Array
  dataCrc32c?: string
}

interface StoredSecret {
  secret: Secret
  versions: Array<{ version: SecretVersion, data: Buffer }>
}

const PROJECT = /^projects\/[^/]+$/
const SECRET_ID = /^[\w-]{1,255}$/
const VERSION_NAME = /^(projects\/[^/]+\/secrets\/[^/]+)\/versions\/([^/]+)$/

export class SecretStore {
  #secrets = new Map<string, StoredSecret>()

  createSecret (parent: string, secretId: string | undefined, input: Partial<Secret> = {}): Secret {
    if (!PROJECT.test(parent)) throw invalidArgument(`Invalid parent: '${parent}'. Expected projects/{project}.`)
    if (!secretId || !SECRET_ID.test(secretId)) {
      throw invalidArgument(`Invalid secret_id: '${secretId ?? ''}'. Secret ids may contain only letters, numbers, ` +
        "'_' and '-', and be at most 255 characters long.")
    }
    const name = `${parent}/secrets/${secretId}`
    if (this.#secrets.has(name)) throw alreadyExists(`Secret [${name}] already exists.`)
    const secret: Secret = {
      ...(input.labels ? { labels: { ...input.labels } } : {}),
      name,
      createTime: new Date().toISOString(),
      replication: input.replication ?? { automatic: {} },
      etag: newEtag()
    }
    this.#secrets.set(name, { secret, versions: [] })
    return structuredClone(secret)
  }

  getSecret (name: string): Secret {
    return structuredClone(this.#require(name).secret)
  }

  addVersion (secretName: string, payload: SecretPayloadInput = {}): SecretVersion {
    const stored = this.#require(secretName)
    const data = Buffer.from(payload.data ?? [])
    if (payload.dataCrc32c !== undefined && Number(payload.dataCrc32c) !== crc32c(data)) {
      throw invalidArgument('Checksum mismatch: the provided data_crc32c does not match the payload data.')
    }
    const version: SecretVersion = {
      name: `${secretName}/versions/${stored.versions.length + 1}`,
      createTime: new Date().toISOString(),
      state: 'ENABLED',
      etag: newEtag(),
      clientSpecifiedPayloadChecksum: payload.dataCrc32c !== undefined
    }
    stored.versions.push({ version, data })
    return structuredClone(version)
  }

  getVersion (name: string): SecretVersion {
    return structuredClone(this.#requireVersion(name).version)
  }

  access (name: string): AccessedSecretVersion {
    const { version, data } = this.#requireVersion(name)
    return { name: version.name, payload: { data: Buffer.from(data), dataCrc32c: String(crc32c(data)) } }
  }

  /** Creates the secret on first use, then adds `value` as its newest version. */
  put (project: string, secretId: string, value: string | Buffer): SecretVersion {
    const name = `projects/${project}/secrets/${secretId}`
    if (!this.#secrets.has(name)) this.createSecret(`projects/${project}`, secretId)
    return this.addVersion(name, { data: Buffer.from(value) })
  }

  /** Resolves a Cloud Run secretKeyRef: `secret` is a bare id (the job's project) or `projects/{p}/secrets/{id}`. */
  versionNameFor (ref: SecretKeySelector, project: string): string {
    const secretName = ref.secret.startsWith('projects/') ? ref.secret : `projects/${project}/secrets/${ref.secret}`
    return `${secretName}/versions/${ref.version || 'latest'}`
  }

  #require (name: string): StoredSecret {
    const stored = this.#secrets.get(name)
    if (!stored) throw notFound(`Secret [${name}] not found or has no versions.`)
    return stored
  }

  #requireVersion (name: string): StoredSecret['versions'][number] {
    const m = VERSION_NAME.exec(name)
    if (!m) throw invalidArgument(`Invalid secret version name: '${name}'. Expected projects/{project}/secrets/{secret}/versions/{version}.`)
    const [, secretName, version] = m
    const versions = this.#require(secretName).versions
    const found = version === 'latest' ? versions.at(-1) : versions[Number(version) - 1]
    if (!found) {
      throw notFound(version === 'latest'
        ? `Secret [${secretName}] not found or has no versions.`
        : `Secret Version [${name}] not found.`)
    }
    return found
  }
}
