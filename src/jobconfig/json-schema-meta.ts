// The check that a work pool's variables schema is JSON Schema: ajv's validator for the draft
// 2020-12 meta-schema. Ajv compiles it on first use, about 50 ms of a first dispatch's CPU, so the
// production bundle (scripts/build.ts) replaces this module with the same validator as code that
// scripts/precompile-schemas.ts generated from these options.
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'

/**
 * As the pool's schemas are compiled (validate-variables.ts), less what the meta-schema does not
 * use. No format is known to it, so its `format`s (uri-reference, regex) are not checked.
 */
export const META_SCHEMA_AJV_OPTIONS = { strict: false, allErrors: true, logger: false } as const

let compiled: ValidateFunction | null = null

/** The meta-schema's validator; it reports errors on itself (`validate.errors`), as ajv's do. */
export function metaSchemaValidator (): ValidateFunction {
  if (compiled === null) {
    const ajv = new Ajv2020(META_SCHEMA_AJV_OPTIONS)
    compiled = ajv.getSchema(ajv.defaultMeta() as string) as ValidateFunction
  }
  return compiled
}
