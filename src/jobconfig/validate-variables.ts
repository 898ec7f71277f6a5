// Prefect's server checks a flow run's job variables against the work pool's variable schema when
// the run is created (prefect/server/api/validation.py `_validate_work_pool_job_variables`, called
// by `validate_job_variables_for_deployment_flow_run`). pushpool repeats that check at dispatch
// time, against the pool's current template, so a run that cannot produce a valid job fails with
// a message that names the variable and the fix instead of a Cloud Run 400.
//
// The rules are Prefect's: pool defaults (with `$ref` block defaults hydrated; invalid defaults
// ignored), then the deployment's and the flow run's variables as a shallow overlay; the schema
// preprocessed the way Prefect does it (optional typed properties also accept null; tuple `items`
// become `prefixItems`; a block type also accepts a block reference); `required` enforced unless a
// default had to be ignored. One deliberate difference: Prefect wraps "block or reference" in
// `oneOf`, and since a block schema without required fields also matches `{"$ref": …}`, Prefect's
// server rejects every block reference in job variables even though its worker resolves them.
// pushpool uses `anyOf`, accepting what the worker can render.

import type { Ajv2020, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js'
import { TemplateError } from '../failures.ts'
import type { BaseJobTemplate } from '../prefect/types.ts'
import type { PrefectLookups } from './types.ts'
import { isPlainObject, readReferenced } from './templating.ts'
import { toPlainJson } from '../prefect/exact-json.ts'
import { prefectServerFormatCheck, type FormatCheck } from './json-schema-formats.ts'
import { PYTHON_PATTERNS, UntranslatableRegexError } from './python-regex.ts'
import { withoutAnnotations } from './schema-annotations.ts'

type Schema = Record<string, unknown>

export interface JobVariableSources {
  deployment: Record<string, unknown> | null
  flowRun: Record<string, unknown> | null
}

export async function validateJobVariables (template: BaseJobTemplate, sources: JobVariableSources, lookups: PrefectLookups): Promise<void> {
  const schema = template.variables as Schema | undefined
  if (!isPlainObject(schema) || Object.keys(schema).length === 0) return
  const validators = await validatorsFor(schema)

  const { defaults, someDefaultIgnored } = await usableDefaults(schema, validators.defaults, lookups)
  // Numbers as JavaScript holds them: no keyword compares beyond 2^53 or tells 1.0 from 1 (JSON
  // Schema's "integer" takes both, as jsonschema does).
  const variables = toPlainJson({ ...defaults, ...(sources.deployment ?? {}), ...(sources.flowRun ?? {}) }) as Record<string, unknown>
  const validate = someDefaultIgnored ? await validators.withoutRequired() : validators.variables
  if (validate(variables)) return
  throw violation(validate.errors ?? [], schema, variables, sources)
}

interface SchemaValidators {
  /** Each pool default alone, formats checked. */
  defaults: ValidateFunction
  /** The merged variables against the preprocessed schema. */
  variables: ValidateFunction
  /** The same without `required`, for when a default had to be ignored. */
  withoutRequired: () => Promise<ValidateFunction>
}

/** One schema to compile, as it is compiled, and what finds it compiled. */
export interface CompileStep {
  /** The schema without annotations (schema-annotations.ts). */
  schema: Schema
  /** Each format it names, with its check; all `true` (none) unless formats are checked. */
  formats: Record<string, FormatCheck | true>
  /** Formats checked: the Ajv instance it is compiled with. */
  checked: boolean
  key: string
}

/**
 * What a pool's variables schema (plain JSON) is compiled into: the steps for its three
 * validators. scripts/precompile-schemas.ts follows the same steps for the shipped template.
 */
export async function compilePlan (schema: Schema): Promise<Record<keyof SchemaValidators, CompileStep>> {
  const prepared = preprocessSchema(schema)
  return {
    defaults: step(removeRequired(schema), await formatChecks(schema)),
    variables: step(prepared, null),
    withoutRequired: step(removeRequired(prepared), null)
  }
}

/** `formats` null: formats are not checked, as on everything but pool defaults. */
function step (processed: Schema, formats: Record<string, FormatCheck | true> | null): CompileStep {
  const schema = withoutAnnotations(processed) as Schema
  // Unchecked, a format is only a name; ajv still wants to know it.
  const known = formats ?? Object.fromEntries([...formatsUsed(schema)].map(format => [format, true as const]))
  return { schema, formats: known, checked: formats !== null, key: JSON.stringify([formats !== null, schema]) }
}

// A work pool snapshot is shared by the dispatches of a few seconds (dispatch/prefect-snapshots.ts),
// so its schema object is too: its validators are found by identity before any key is computed.
const validatorsBySchema = new WeakMap<Schema, SchemaValidators>()

async function validatorsFor (exactSchema: Schema): Promise<SchemaValidators> {
  const known = validatorsBySchema.get(exactSchema)
  if (known !== undefined) return known
  const schema = toPlainJson(exactSchema) as Schema
  await refuseInvalidSchema(schema)
  const plan = await compilePlan(schema)
  let withoutRequired: Promise<ValidateFunction> | null = null
  const validators: SchemaValidators = {
    defaults: await validatorFor(plan.defaults),
    variables: await validatorFor(plan.variables),
    withoutRequired: () => (withoutRequired ??= validatorFor(plan.withoutRequired))
  }
  validatorsBySchema.set(exactSchema, validators)
  return validators
}

/** `_get_base_config_defaults`: the pool's defaults, `$ref` defaults hydrated, each checked alone. */
async function usableDefaults (schema: Schema, checkDefault: ValidateFunction, lookups: PrefectLookups): Promise<{ defaults: Record<string, unknown>, someDefaultIgnored: boolean }> {
  const properties = isPlainObject(schema.properties) ? schema.properties : {}
  const defaults: Record<string, unknown> = {}
  let someDefaultIgnored = false
  for (const [name, property] of Object.entries(properties)) {
    if (!isPlainObject(property) || !Object.hasOwn(property, 'default')) continue
    let value = property.default
    if (isPlainObject(value) && Object.hasOwn(value, '$ref')) {
      const id = isPlainObject(value.$ref) ? value.$ref.block_document_id : undefined
      if (id === undefined || id === null) continue
      value = await defaultBlockData(name, id, lookups)
    }
    if (checkDefault(toPlainJson({ [name]: value }))) defaults[name] = value
    else someDefaultIgnored = true
  }
  return { defaults, someDefaultIgnored }
}

async function defaultBlockData (variable: string, id: unknown, lookups: PrefectLookups): Promise<unknown> {
  const field = `variables.${variable}.default`
  const fix = `edit the work pool to pick an existing block for job variable '${variable}'`
  const uuid = typeof id === 'string' ? canonicalUuid(id) : null
  if (uuid === null) throw new TemplateError(field, `${field} refers to a block id that is not a UUID; ${fix}.`)
  return (await readReferenced(() => lookups.readBlockDocument(uuid), field, `block document ${uuid}`, fix)).data
}

/** Python's `str(UUID(text))`: braces, a `urn:uuid:` prefix and hyphens are optional on the way in. */
function canonicalUuid (text: string): string | null {
  const hex = text.replace(/^urn:/, '').replace(/^uuid:/, '').replace(/[{}]/g, '').replaceAll('-', '').toLowerCase()
  if (!/^[0-9a-f]{32}$/.test(hex)) return null
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** `preprocess_schema(schema, allow_none_with_default=True)`. */
function preprocessSchema (original: Schema): Schema {
  const schema = structuredClone(original)
  if (isPlainObject(schema.properties)) processProperties(schema.properties, requiredOf(schema))
  if (isPlainObject(schema.definitions)) {
    const definitions = schema.definitions
    for (const definition of Object.values(definitions)) {
      if (!isPlainObject(definition)) continue
      if (isPlainObject(definition.properties)) processProperties(definition.properties, requiredOf(definition))
      if ('block_type_slug' in definition) {
        definitions[String(definition.title)] = { anyOf: [definition, BLOCK_REFERENCE_SCHEMA] }
      }
    }
  }
  return schema
}

const BLOCK_REFERENCE_SCHEMA = {
  type: 'object',
  properties: {
    $ref: {
      oneOf: [
        { type: 'string', format: 'uuid' },
        { type: 'object', additionalProperties: { type: 'string' }, minProperties: 1 }
      ]
    }
  },
  required: ['$ref']
}

function requiredOf (schema: Schema): unknown[] {
  return Array.isArray(schema.required) ? schema.required : []
}

function processProperties (properties: Schema, required: unknown[]): void {
  for (const [key, property] of Object.entries(properties)) {
    if (!isPlainObject(property)) continue
    // Pydantic v1 wrote Optional[X] as plain X: accept null for every optional typed property.
    if (!required.includes(key) && 'type' in property && property.type !== 'null') {
      property.anyOf = [{ type: property.type }, { type: 'null' }]
      delete property.type
    }
    if (Array.isArray(property.items) && property.items.length > 0 && property.prefixItems === undefined) {
      property.prefixItems = structuredClone(property.items)
      delete property.items
    }
    if (isPlainObject(property.properties)) processProperties(property.properties, requiredOf(property))
  }
}

/** `remove_nested_keys(["required"], schema)`: through nested objects, not through lists. */
function removeRequired (schema: Schema): Schema {
  const copy: Schema = {}
  for (const [key, value] of Object.entries(schema)) {
    if (key !== 'required') copy[key] = isPlainObject(value) ? removeRequired(value) : value
  }
  return copy
}

/** Each format the schema names, with the check Prefect's server makes for it (true: none, anything passes). */
async function formatChecks (schema: Schema): Promise<Record<string, FormatCheck | true>> {
  const checks: Record<string, FormatCheck | true> = {}
  for (const format of formatsUsed(schema)) checks[format] = await prefectServerFormatCheck(format) ?? true
  return checks
}

// Making an Ajv instance is cheap; the first schema it checks against the meta-schema compiles
// that, ~50 ms. So neither instance checks what it compiles: the pool's schema is checked once, as
// the pool holds it (refuseInvalidSchema), and what is compiled is made from it (without
// `required`, or by preprocessSchema), valid JSON Schema if it was.
export const variablesAjvOptions = (checked: boolean) => ({ strict: false, allErrors: true, logger: false as const, validateFormats: checked, validateSchema: false, code: { regExp: PYTHON_PATTERNS } })

/** One Ajv that checks formats (pool defaults), one that does not (everything else). */
interface AjvInstances {
  checked: Ajv2020
  unchecked: Ajv2020
}

let instances: Promise<AjvInstances> | null = null

/**
 * Ajv is imported with the first schema to compile: start-up compiles none, and a pool on the
 * shipped template none either (precompiled-validators.ts), so neither loads it.
 */
function ajvInstances (): Promise<AjvInstances> {
  instances ??= import('ajv/dist/2020.js').then(({ Ajv2020 }) => ({ checked: new Ajv2020(variablesAjvOptions(true)), unchecked: new Ajv2020(variablesAjvOptions(false)) }))
  return instances
}

/** The meta-schema Ajv2020 checks a schema against when the schema names none (its `defaultMeta()`). */
const DEFAULT_META_SCHEMA = 'https://json-schema.org/draft/2020-12/schema'

/** Throws what ajv's compile would for a schema that is not JSON Schema, without compiling it. */
async function refuseInvalidSchema (schema: Schema): Promise<void> {
  // A schema that names another meta-schema is ajv's to check (or to refuse as unknown).
  if (schema.$schema !== undefined && schema.$schema !== DEFAULT_META_SCHEMA) {
    const ajv = (await ajvInstances()).checked
    try {
      ajv.validateSchema(schema, true)
    } catch (error) {
      throw invalidSchema(error)
    }
    return
  }
  // Imported here: in the production bundle it is 66 kB of generated code that start-up need not read.
  const validate = (await import('./json-schema-meta.ts')).metaSchemaValidator()
  if (!validate(schema)) throw invalidSchema(new Error(`schema is invalid: ${(await ajvInstances()).checked.errorsText(validate.errors)}`))
}

// Compiling generates code, so the few schemas a deployment uses are kept compiled.
const compiledSchemas = new Map<string, ValidateFunction>()
const COMPILED_SCHEMAS_KEPT = 64

/** The step's validator: compiled before, in the bundle (the shipped template's), or compiled now. */
async function validatorFor (step: CompileStep): Promise<ValidateFunction> {
  const kept = compiledSchemas.get(step.key)
  if (kept !== undefined) return kept
  const validate = (await import('./precompiled-validators.ts')).precompiledValidator(step.key) ?? compile(await ajvInstances(), step)
  if (compiledSchemas.size >= COMPILED_SCHEMAS_KEPT) compiledSchemas.delete(compiledSchemas.keys().next().value as string)
  compiledSchemas.set(step.key, validate)
  return validate
}

function compile (instances: AjvInstances, step: CompileStep): ValidateFunction {
  const ajv = step.checked ? instances.checked : instances.unchecked
  // Prefect's server checks formats only for pool defaults, and only those its format checker
  // knows (json-schema-formats.ts); any other format passes. A format's check depends on its name
  // alone, so the instance keeps each once added.
  for (const [format, check] of Object.entries(step.formats)) if (ajv.formats[format] === undefined) ajv.addFormat(format, check)
  let validate: ValidateFunction
  try {
    validate = ajv.compile(step.schema)
  } catch (error) {
    ajv.removeSchema(step.schema)
    throw invalidSchema(error)
  }
  // The validator keeps what it needs; the instance need not remember the schema, whose `$id`
  // (if any) another pool's schema may share.
  ajv.removeSchema(step.schema)
  return validate
}

function invalidSchema (error: unknown): TemplateError {
  const reason = error instanceof Error ? error.message : String(error)
  if (error instanceof UntranslatableRegexError) {
    return new TemplateError('variables', `The work pool's variables schema has a pattern using ${reason}, which pushpool cannot evaluate; rewrite that pattern in the base job template's "variables" section.`, { cause: error })
  }
  return new TemplateError('variables', `The work pool's variables schema is not valid JSON Schema (${reason}); fix the base job template's "variables" section.`, { cause: error })
}

function formatsUsed (node: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const item of node) formatsUsed(item, found)
  else if (isPlainObject(node)) {
    if (typeof node.format === 'string') found.add(node.format)
    for (const value of Object.values(node)) formatsUsed(value, found)
  }
  return found
}

const SECRET_LOOKING = /secret|password|passwd|token|key|auth|credential|private/i
const TYPE_OR_COMBINATOR = new Set(['type', 'anyOf', 'oneOf', 'allOf', 'if', 'not'])

function violation (errors: ErrorObject[], schema: Schema, variables: Record<string, unknown>, sources: JobVariableSources): TemplateError {
  const missing = errors.find(error => error.keyword === 'required' && error.instancePath === '')
  if (missing !== undefined) {
    const name = String(missing.params.missingProperty)
    return new TemplateError(`variables.${name}`, `job variable '${name}' is required by the work pool but is not set; set it in the deployment's or the flow run's job_variables.`)
  }
  const path = errors[0].instancePath
  const atPath = errors.filter(error => error.instancePath === path)
  const segments = path.split('/').slice(1).map(segment => segment.replaceAll('~1', '/').replaceAll('~0', '~'))
  const name = segments.join('.')
  const top = segments[0]
  const property = isPlainObject(schema.properties) && isPlainObject(schema.properties[top]) ? schema.properties[top] : {}
  const value = segments.reduce<unknown>((node, key) => (isPlainObject(node) ? node[key] : Array.isArray(node) ? node[Number(key)] : undefined), variables)
  const shown = showableValue(name, value)
  const subject = `job variable '${name}'${shown === null ? '' : ` = ${shown}`}`
  const origin = sources.flowRun !== null && Object.hasOwn(sources.flowRun, top)
    ? ' (set by the flow run\'s job_variables)'
    : sources.deployment !== null && Object.hasOwn(sources.deployment, top) ? ' (set by the deployment\'s job_variables)' : ' (the work pool\'s default)'
  const field = `variables.${name}`

  const specific = atPath.find(error => !TYPE_OR_COMBINATOR.has(error.keyword))
  if (specific !== undefined) return new TemplateError(field, `${subject}${origin} ${describe(specific, property, segments.length === 1)}`)
  const types = atPath.filter(error => error.keyword === 'type').map(error => String(error.params.type))
  if (types.length > 0) {
    const example = segments.length === 1 ? exampleOf(property) : null
    return new TemplateError(field, `${subject}${origin} must be ${[...new Set(types)].join(' or ')}, not ${jsonTypeOf(value)}; ${example === null ? 'change its type' : `set it like ${example}`}.`)
  }
  return new TemplateError(field, `${subject}${origin} ${errors[0].message ?? 'is invalid'}; make it match the work pool's variable schema.`)
}

function describe (error: ErrorObject, property: Schema, isTopLevel: boolean): string {
  const params = error.params
  switch (error.keyword) {
    case 'pattern': {
      const example = isTopLevel ? exampleOf(property) : null
      return `does not match ${String(params.pattern)}; ${example === null ? 'set a value that matches it' : `set it like ${example}`}.`
    }
    case 'enum':
      return `is not one of ${(params.allowedValues as unknown[]).map(String).join(', ')}; use one of those.`
    case 'maximum':
    case 'exclusiveMaximum':
      return `must be ${String(params.comparison)} ${String(params.limit)}; lower it.`
    case 'minimum':
    case 'exclusiveMinimum':
      return `must be ${String(params.comparison)} ${String(params.limit)}; raise it.`
    case 'required':
      return `lacks the required field '${String(params.missingProperty)}'; add it.`
    default:
      return `${error.message ?? 'is invalid'}; make it match the work pool's variable schema.`
  }
}

function exampleOf (property: Schema): string | null {
  // `example` is how Pydantic v1 templates (e.g. the collection registry's) spell `examples`.
  const candidates = [...(Array.isArray(property.examples) ? property.examples : []), property.example, property.default]
  const example = candidates.find(candidate => typeof candidate === 'string' || typeof candidate === 'number')
  return example === undefined ? null : typeof example === 'string' ? `'${example}'` : String(example)
}

/** A value may be quoted back only if it cannot be a secret: a number, a flag, or a short plain string of a harmless variable. */
function showableValue (name: string, value: unknown): string | null {
  if (SECRET_LOOKING.test(name) || /^(env|credentials)(\.|$)/.test(name)) return null
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (typeof value !== 'string' || value.length > 64 || /\p{C}/u.test(value)) return null
  return `'${value}'`
}

function jsonTypeOf (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (Number.isInteger(value)) return 'an integer'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
