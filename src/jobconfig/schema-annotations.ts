// A JSON Schema without its annotations, which no validator reads: a pool's schema is compiled as
// that, so pools that differ only in their defaults and descriptions (`pushpool setup` writes its
// own defaults into the shipped template) share one compiled validator, and the shipped template's
// validators can be compiled ahead of time (scripts/precompile-schemas.ts).
import { isPlainObject } from './templating.ts'

type Schema = Record<string, unknown>

/** Keywords that only annotate: Ajv (without `useDefaults`) never reads them when validating. */
const ANNOTATIONS = new Set(['default', 'title', 'description', 'examples', '$comment', 'deprecated', 'readOnly', 'writeOnly'])
/** Keywords whose value is a schema. */
const SCHEMA = new Set(['additionalProperties', 'additionalItems', 'items', 'contains', 'propertyNames', 'not', 'if', 'then', 'else', 'unevaluatedItems', 'unevaluatedProperties', 'contentSchema'])
/** Keywords whose value is a list of schemas (`items` may be one, in older drafts). */
const SCHEMA_LIST = new Set(['allOf', 'anyOf', 'oneOf', 'prefixItems', 'items'])
/** Keywords whose value maps names (never stripped) to schemas. */
const SCHEMA_MAP = new Set(['properties', 'patternProperties', 'definitions', '$defs', 'dependentSchemas'])

/** A copy of the schema without annotations; names, `const`, `enum` and unknown keywords are kept as they are. */
export function withoutAnnotations (schema: unknown): unknown {
  if (!isPlainObject(schema)) return schema
  const copy: Schema = {}
  for (const [keyword, value] of Object.entries(schema)) {
    if (ANNOTATIONS.has(keyword)) continue
    if (SCHEMA_LIST.has(keyword) && Array.isArray(value)) copy[keyword] = value.map(withoutAnnotations)
    else if (SCHEMA.has(keyword)) copy[keyword] = withoutAnnotations(value)
    else if (SCHEMA_MAP.has(keyword) && isPlainObject(value)) {
      copy[keyword] = Object.fromEntries(Object.entries(value).map(([name, subschema]) => [name, withoutAnnotations(subschema)]))
    } else copy[keyword] = value
  }
  return copy
}
