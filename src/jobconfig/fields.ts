// What the worker's pydantic job-configuration model accepts for each field (pydantic v2 "lax"
// mode), so that a rendered configuration Prefect's worker would refuse is refused here too, with
// the field named. Values are never quoted back: a field may hold a secret.

import { TemplateError } from '../failures.ts'
import { isPlainObject } from './templating.ts'
import { pythonStr } from './python.ts'
import { isWholeFloat } from '../prefect/exact-json.ts'

export type Configuration = Record<string, unknown>

function fieldError (key: string, problem: string): TemplateError {
  return new TemplateError(`job_configuration.${key}`,
    `The job configuration's '${key}' ${problem}; check the '${key}' job variable and the work pool's job_configuration.${key}.`)
}

export function readOptionalString (configuration: Configuration, key: string): string | null {
  const value = configuration[key]
  if (value === undefined || value === null) return null
  if (typeof value !== 'string') throw fieldError(key, 'must be a string or null')
  return value
}

export function readString (configuration: Configuration, key: string, fallback: string): string {
  const value = configuration[key]
  if (value === undefined) return fallback
  if (typeof value !== 'string') throw fieldError(key, 'must be a string')
  return value
}

/** `dict[str, str]`, e.g. `labels`. */
export function readStringMap (configuration: Configuration, key: string): Record<string, string> {
  const value = configuration[key]
  if (value === undefined) return {}
  if (!isPlainObject(value)) throw fieldError(key, 'must be an object of strings')
  for (const [name, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw fieldError(key, `must map every key to a string, and '${name}' is not one`)
  }
  return value as Record<string, string>
}

/** Labels already in the job body: the template's own, kept as they are. */
export function readLabelObject (labels: unknown, field: string): Record<string, unknown> {
  if (labels === undefined) return {}
  if (!isPlainObject(labels)) throw new TemplateError(field, `${field} must be an object of labels; fix the work pool's base job template.`)
  return labels
}

/** `env`: any value is turned into Python's `str()` of it; null stays null (and is dropped later). */
export function readEnv (configuration: Configuration, key: string): Record<string, string | null> {
  const value = configuration[key]
  if (value === undefined) return {}
  if (!isPlainObject(value)) throw fieldError(key, 'must be an object of environment variables')
  const env: Record<string, string | null> = {}
  for (const [name, item] of Object.entries(value)) env[name] = item === null ? null : pythonStr(item)
  return env
}

export interface IntegerRule {
  fallback: number | null
  nullable: boolean
  /** Exclusive lower bound and inclusive upper bound, as in `Field(gt=…, le=…)`. */
  greaterThan: number
  atMost: number
}

const INTEGER_TEXT = /^[+-]?\d+(?:_\d+)*(?:\.0*)?$/

export function readInteger (configuration: Configuration, key: string, rule: IntegerRule): number | null {
  const value = configuration[key]
  if (value === undefined) return rule.fallback
  const range = `an integer greater than ${rule.greaterThan} and at most ${rule.atMost}`
  if (value === null) {
    if (rule.nullable) return null
    throw fieldError(key, `must be ${range}, not null`)
  }
  let number: number
  if (typeof value === 'boolean') number = value ? 1 : 0
  else if (typeof value === 'number' && Number.isInteger(value)) number = value
  else if (isWholeFloat(value)) number = value.valueOf() // pydantic takes 600.0 for 600
  else if (typeof value === 'bigint') number = Number(value) // only ever compared with the bounds below
  else if (typeof value === 'string' && INTEGER_TEXT.test(value.trim())) number = Math.trunc(Number(value.trim().replaceAll('_', '')))
  else throw fieldError(key, `must be ${range}`)
  if (!(number > rule.greaterThan && number <= rule.atMost)) throw fieldError(key, `must be ${range}`)
  return number
}

const TRUE_TEXT = new Set(['1', 'on', 't', 'true', 'y', 'yes'])
const FALSE_TEXT = new Set(['0', 'off', 'f', 'false', 'n', 'no'])

export function readBoolean (configuration: Configuration, key: string, rule: { fallback: boolean | null, nullable: boolean }): boolean | null {
  const value = configuration[key]
  if (value === undefined) return rule.fallback
  if (value === null && rule.nullable) return null
  if (typeof value === 'boolean') return value
  const number = isWholeFloat(value) ? value.valueOf() : value
  if (number === 1 || number === 0) return number === 1
  if (typeof value === 'string' && TRUE_TEXT.has(value.toLowerCase())) return true
  if (typeof value === 'string' && FALSE_TEXT.has(value.toLowerCase())) return false
  throw fieldError(key, 'must be true or false')
}

export interface SecretKeySelector {
  secret: string
  version: string
}

function toSecretKeySelector (value: unknown, key: string): SecretKeySelector {
  if (!isPlainObject(value) || typeof value.secret !== 'string' || typeof value.version !== 'string') {
    throw fieldError(key, 'must be a Secret Manager reference {"secret": "<name>", "version": "<version or latest>"}')
  }
  return { secret: value.secret, version: value.version }
}

export function readOptionalSecretKeySelector (configuration: Configuration, key: string): SecretKeySelector | null {
  const value = configuration[key]
  return value === undefined || value === null ? null : toSecretKeySelector(value, key)
}

export function readSecretKeySelectorMap (configuration: Configuration, key: string): Record<string, SecretKeySelector> {
  const value = configuration[key]
  if (value === undefined) return {}
  if (!isPlainObject(value)) throw fieldError(key, 'must be an object mapping environment variable names to Secret Manager references')
  const selectors: Record<string, SecretKeySelector> = {}
  for (const [name, item] of Object.entries(value)) selectors[name] = toSecretKeySelector(item, `${key}.${name}`)
  return selectors
}

export function readOptionalStringList (configuration: Configuration, key: string): string[] | null {
  const value = configuration[key]
  if (value === undefined) return []
  if (value === null) return null
  if (!Array.isArray(value) || !value.every(item => typeof item === 'string')) throw fieldError(key, 'must be a list of strings')
  return value
}

/**
 * The GcpCredentials block: its data, or null for Application Default Credentials. Like the block
 * model, `service_account_info` may arrive as a JSON string and is parsed.
 */
export function readCredentials (configuration: Configuration, nullable: boolean): Record<string, unknown> | null {
  const value = configuration.credentials
  if (value === undefined) return null
  if (value === null) {
    if (nullable) return null
    throw fieldError('credentials', 'must be a GcpCredentials block, not null (leave the variable unset to use pushpool\'s own identity)')
  }
  if (!isPlainObject(value)) throw fieldError('credentials', 'must be a GcpCredentials block (select one, or leave it unset)')
  const credentials = structuredClone(value)
  if (typeof credentials.service_account_info === 'string') {
    try {
      credentials.service_account_info = JSON.parse(credentials.service_account_info)
    } catch {
      throw fieldError('credentials', 'has a service_account_info that is not valid JSON; paste the whole key file')
    }
  }
  if (credentials.service_account_info != null && !isPlainObject(credentials.service_account_info)) {
    throw fieldError('credentials', 'has a service_account_info that is not a JSON object; paste the whole key file')
  }
  // A key file path only exists on the machine of a worker that was told about it; pushpool
  // would silently fall back to its own identity, so it refuses instead.
  if (credentials.service_account_file != null && credentials.service_account_file !== '') {
    throw fieldError('credentials', 'uses service_account_file, a path on a worker\'s machine that pushpool cannot read; put the key in service_account_info instead')
  }
  if (credentials.project != null && typeof credentials.project !== 'string') throw fieldError('credentials', 'has a project that is not a string')
  return credentials
}
