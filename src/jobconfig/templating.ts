// A port of prefect/utilities/templating (apply_values, resolve_block_document_references,
// resolve_variables) and of prefect.utilities.collections.get_from_dict, the machinery that turns a
// work pool's base job template plus job variables into a job configuration.
//
// The one deliberate difference: Prefect replaces `{{ $NAME }}` with the *worker's* environment
// variable NAME. pushpool is a shared service whose environment holds its own secrets, so it never
// exposes it to templates: `{{ $NAME }}` always renders as "" (what Prefect renders when the
// worker has no such variable), and the caller is told so through `onEnvironmentPlaceholder`.

import { RetryLater, TemplateError } from '../failures.ts'
import type { BlockDocument } from '../prefect/types.ts'
import { isWholeFloat } from '../prefect/exact-json.ts'
import type { PrefectLookups } from './types.ts'
import { pythonStr, pythonTruthy } from './python.ts'

/** Prefect's `NotSet`: a placeholder whose variable is absent. Dict keys and list items holding it are dropped. */
export const NOT_SET: unique symbol = Symbol('NotSet')
export type NotSet = typeof NOT_SET

export type PlaceholderType = 'standard' | 'block_document' | 'variable' | 'env_var'

export interface Placeholder {
  fullMatch: string
  name: string
  type: PlaceholderType
}

const BLOCK_DOCUMENT_PREFIX = 'prefect.blocks.'
const VARIABLE_PREFIX = 'prefect.variables.'
const ENV_VAR_PREFIX = '$'

// Python's `\s` and `\w` for str patterns, spelled out: JavaScript's differ at the edges.
const PY_SPACE = '[ \\t\\n\\r\\f\\v\\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]'
const PLACEHOLDER = new RegExp(`\\{\\{${PY_SPACE}*([\\p{L}\\p{N}_.\\-\\[\\]$]+)${PY_SPACE}*\\}\\}`, 'gu')

function placeholderType (name: string): PlaceholderType {
  if (name.startsWith(BLOCK_DOCUMENT_PREFIX)) return 'block_document'
  if (name.startsWith(VARIABLE_PREFIX)) return 'variable'
  if (name.startsWith(ENV_VAR_PREFIX)) return 'env_var'
  return 'standard'
}

/** The distinct placeholders of a string, in order of first appearance. */
export function findPlaceholders (template: string): Placeholder[] {
  const seen = new Map<string, Placeholder>()
  for (const match of template.matchAll(PLACEHOLDER)) {
    if (!seen.has(match[0])) seen.set(match[0], { fullMatch: match[0], name: match[1], type: placeholderType(match[1]) })
  }
  return [...seen.values()]
}

function isSinglePlaceholder (template: string, placeholders: Placeholder[], type: PlaceholderType): boolean {
  return placeholders.length === 1 && placeholders[0].fullMatch === template && placeholders[0].type === type
}

/** A JSON object (a Python dict): not a list, and not the boxed Number that stands for a whole float. */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isWholeFloat(value)
}

const PYTHON_INT = /^-?\d+(?:_\d+)*$/

/**
 * `get_from_dict(values, "a.b[0].c", NotSet)`: a path segment that parses as a Python int indexes a
 * list or string (negative from the end) and never matches a JSON object key.
 */
export function getFromDict (root: unknown, path: string): unknown {
  let value = root
  for (const key of path.replaceAll('[', '.').replaceAll(']', '').split('.')) {
    if (PYTHON_INT.test(key)) {
      const sequence = Array.isArray(value) ? value : typeof value === 'string' ? [...value] : null
      if (sequence === null) return NOT_SET
      const index = Number(key.replaceAll('_', ''))
      const position = index < 0 ? sequence.length + index : index
      if (position < 0 || position >= sequence.length) return NOT_SET
      value = sequence[position]
    } else {
      if (!isPlainObject(value) || !Object.hasOwn(value, key)) return NOT_SET
      value = value[key]
    }
  }
  return value
}

export interface ApplyValuesHooks {
  /** Called with NAME for every `{{ $NAME }}` rendered as "". */
  onEnvironmentPlaceholder?: (name: string) => void
}

/**
 * `apply_values(template, values)`: a string that is exactly one placeholder becomes the typed value
 * (NOT_SET when absent); other strings get `str(value)` spliced in, absent ones as "". Block and
 * variable placeholders are left for the resolvers below.
 */
export function applyValues (template: unknown, values: Record<string, unknown>, hooks: ApplyValuesHooks = {}): unknown {
  if (typeof template === 'string') {
    const placeholders = findPlaceholders(template)
    if (placeholders.length === 0) return template
    if (isSinglePlaceholder(template, placeholders, 'standard')) {
      const value = getFromDict(values, placeholders[0].name)
      return value === NOT_SET ? NOT_SET : structuredClone(value)
    }
    let rendered = template
    for (const { fullMatch, name, type } of placeholders) {
      if (type === 'standard') {
        const value = getFromDict(values, name)
        rendered = rendered.replaceAll(fullMatch, () => value === NOT_SET ? '' : pythonStr(value))
      } else if (type === 'env_var') {
        hooks.onEnvironmentPlaceholder?.(name.replace(/^\$+/, ''))
        rendered = rendered.replaceAll(fullMatch, () => '')
      }
    }
    return rendered
  }
  if (Array.isArray(template)) {
    return template.map(item => applyValues(item, values, hooks)).filter(item => item !== NOT_SET)
  }
  if (isPlainObject(template)) {
    const rendered: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(template)) {
      const value = applyValues(item, values, hooks)
      if (value !== NOT_SET) rendered[key] = value
    }
    return rendered
  }
  return template
}

function childPath (path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : `${path}.${key}`
}

/**
 * Reads what a placeholder or a `$ref` refers to (null: it does not exist). An outage stays
 * retryable; anything else becomes a TemplateError whose message names the field and the fix.
 */
export async function readReferenced<T> (read: () => Promise<T | null>, field: string, what: string, fix: string): Promise<T> {
  let found: T | null
  try {
    found = await read()
  } catch (error) {
    if (error instanceof RetryLater) throw error
    const reason = error instanceof Error ? error.message : String(error)
    throw new TemplateError(field, `${field} refers to ${what}, which could not be read (${reason}); ${fix}.`, { cause: error })
  }
  if (found === null) throw new TemplateError(field, `${field} refers to ${what}, which does not exist; ${fix}.`)
  return found
}

const FIX_REFERENCE = 'in the deployment\'s or flow run\'s job_variables, or in the work pool\'s base job template'

/**
 * `resolve_block_document_references`: `{"$ref": {"block_document_id": id}}` becomes that block's
 * data; `{{ prefect.blocks.<type-slug>.<name>[.path] }}` becomes the block's data (or the value at
 * path), typed when it is the whole string, `str()`-spliced when inline (scalars only). A block
 * whose only field is `value` (Secret, String, JSON…) stands for that value.
 */
export async function resolveBlockDocumentReferences (template: unknown, lookups: PrefectLookups, path: string): Promise<unknown> {
  const byId = new Map<string, Promise<BlockDocument>>()
  const byName = new Map<string, Promise<BlockDocument>>()

  const readById = (id: string, field: string): Promise<BlockDocument> => {
    if (!byId.has(id)) {
      byId.set(id, readReferenced(() => lookups.readBlockDocument(id), field, `block document ${id}`,
        `pick an existing block for it ${FIX_REFERENCE}`))
    }
    return byId.get(id) as Promise<BlockDocument>
  }
  const readByName = (placeholder: Placeholder, typeSlug: string, name: string, field: string): Promise<BlockDocument> => {
    const key = JSON.stringify([typeSlug, name])
    if (!byName.has(key)) {
      byName.set(key, readReferenced(() => lookups.readBlockDocumentByName(typeSlug, name), field, `block '${name}' of type '${typeSlug}'`,
        `create that block, or fix ${placeholder.fullMatch} ${FIX_REFERENCE}`))
    }
    return byName.get(key) as Promise<BlockDocument>
  }

  const resolvePlaceholder = async (placeholder: Placeholder, field: string): Promise<unknown> => {
    const parts = splitAtMost(placeholder.name.replaceAll(BLOCK_DOCUMENT_PREFIX, ''), '.', 2)
    if (parts.length < 2) {
      throw new TemplateError(field, `Block placeholder '${placeholder.fullMatch}' is malformed; write it as {{ prefect.blocks.<block-type-slug>.<block-document-name> }}.`)
    }
    const [typeSlug, name, keyPath] = parts
    let data: unknown = (await readByName(placeholder, typeSlug, name, field)).data
    const keyPathIntoValue = keyPath !== undefined && (keyPath === 'value' || keyPath.startsWith('value.') || keyPath.startsWith('value['))
    if (isPlainObject(data) && Object.keys(data).length === 1 && Object.hasOwn(data, 'value') && !keyPathIntoValue) data = data.value
    if (keyPath !== undefined) {
      data = getFromDict(data, keyPath)
      if (data === NOT_SET) {
        throw new TemplateError(field, `Block placeholder '${placeholder.fullMatch}': the block '${name}' of type '${typeSlug}' has nothing at '${keyPath}'; fix the path after the block name.`)
      }
    }
    return structuredClone(data)
  }

  const resolve = async (node: unknown, field: string): Promise<unknown> => {
    if (isPlainObject(node)) {
      if (Object.hasOwn(node, '$ref')) {
        const reference = node.$ref
        if (!isPlainObject(reference)) {
          throw new TemplateError(field, `'${field}' has a "$ref" that is not an object; a block reference is written {"$ref": {"block_document_id": "<id>"}}.`)
        }
        const id = reference.block_document_id
        if (pythonTruthy(id)) {
          if (typeof id !== 'string') {
            throw new TemplateError(field, `'${field}' refers to a block with a block_document_id that is not a string; use the block document's id.`)
          }
          return structuredClone((await readById(id, field)).data)
        }
      }
      const resolved: Record<string, unknown> = {}
      for (const [key, item] of Object.entries(node)) resolved[key] = await resolve(item, childPath(field, key))
      return resolved
    }
    if (Array.isArray(node)) {
      const resolved: unknown[] = []
      for (const [index, item] of node.entries()) resolved.push(await resolve(item, childPath(field, index)))
      return resolved
    }
    if (typeof node !== 'string') return node
    const placeholders = findPlaceholders(node)
    if (!placeholders.some(placeholder => placeholder.type === 'block_document')) return node
    if (isSinglePlaceholder(node, placeholders, 'block_document')) return await resolvePlaceholder(placeholders[0], field)
    let rendered = node
    for (const placeholder of placeholders) {
      if (placeholder.type !== 'block_document') continue
      const value = await resolvePlaceholder(placeholder, field)
      if (isPlainObject(value) || Array.isArray(value)) {
        throw new TemplateError(field, `Block placeholder '${placeholder.fullMatch}' inside a longer string resolves to ${Array.isArray(value) ? 'a list' : 'an object'}; refer to one scalar attribute instead (e.g. '.value' or '.url').`)
      }
      rendered = rendered.replaceAll(placeholder.fullMatch, () => pythonStr(value))
    }
    return rendered
  }

  return await resolve(template, path)
}

/** `resolve_variables`: `{{ prefect.variables.<name> }}` becomes the Prefect Variable's value; an absent variable becomes "". */
export async function resolveVariables (template: unknown, lookups: PrefectLookups, path: string): Promise<unknown> {
  const cache = new Map<string, Promise<unknown>>()
  const read = (placeholderName: string, field: string): Promise<unknown> => {
    const name = placeholderName.replaceAll(VARIABLE_PREFIX, '')
    if (!cache.has(name)) {
      const readValue = async (): Promise<{ value: unknown }> => ({ value: await lookups.readVariable(name) })
      cache.set(name, readReferenced(readValue, field, `Prefect variable '${name}'`, `fix {{ prefect.variables.${name} }} ${FIX_REFERENCE}`)
        .then(found => found.value))
    }
    return cache.get(name) as Promise<unknown>
  }

  const resolve = async (node: unknown, field: string): Promise<unknown> => {
    if (typeof node === 'string') {
      const placeholders = findPlaceholders(node)
      if (!placeholders.some(placeholder => placeholder.type === 'variable')) return node
      if (isSinglePlaceholder(node, placeholders, 'variable')) {
        const value = await read(placeholders[0].name, field)
        return value === undefined ? '' : structuredClone(value)
      }
      let rendered = node
      for (const placeholder of placeholders) {
        if (placeholder.type !== 'variable') continue
        const value = await read(placeholder.name, field)
        rendered = rendered.replaceAll(placeholder.fullMatch, () => value === undefined ? '' : pythonStr(value))
      }
      return rendered
    }
    if (Array.isArray(node)) {
      const resolved: unknown[] = []
      for (const [index, item] of node.entries()) resolved.push(await resolve(item, childPath(field, index)))
      return resolved
    }
    if (isPlainObject(node)) {
      const resolved: Record<string, unknown> = {}
      for (const [key, item] of Object.entries(node)) resolved[key] = await resolve(item, childPath(field, key))
      return resolved
    }
    return node
  }

  return await resolve(template, path)
}

/** Python's `text.split(separator, maxsplit)`. */
function splitAtMost (text: string, separator: string, maxSplit: number): string[] {
  const parts = text.split(separator)
  return parts.length <= maxSplit + 1 ? parts : [...parts.slice(0, maxSplit), parts.slice(maxSplit).join(separator)]
}
