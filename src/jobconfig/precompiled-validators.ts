// The validators of the shipped Cloud Run v2 template's variables schema
// (src/setup/cloud-run-v2-base-job-template.json, which `pushpool setup` gives a pool), compiled
// ahead of time. From the sources there are none: a pool's schema is compiled at its first
// dispatch (validate-variables.ts); loading Ajv and compiling took ~110 ms of the artifact's
// first-dispatch CPU. The production bundle (scripts/build.ts) replaces this module with those
// validators as code, which scripts/precompile-schemas.ts generates by the same steps (compilePlan).
import type { ValidateFunction } from 'ajv/dist/2020.js'

/** The validator compiled ahead of time for this step key, if the bundle has one. */
export function precompiledValidator (_key: string): ValidateFunction | undefined {
  return undefined
}
