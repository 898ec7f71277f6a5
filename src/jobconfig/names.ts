// Cloud Run job ids. The rule: lowercase letters, digits and dashes, starting with a letter, not
// ending with a dash, at most 63 characters. Cloud Run names an execution `<job>-<5 chars>`.

import { slugify } from './slugify.ts'

export const CLOUD_RUN_JOB_ID = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/

const JOB_ID_MAX_LENGTH = 63
const PER_RUN_SUFFIX_LENGTH = 7
/** `-xxxxx`: room for the execution name Cloud Run derives from a reused job's id. */
const EXECUTION_SUFFIX_LENGTH = 6
const REUSE_HASH_LENGTH = 12
const JOB_NAME_DISALLOWED = /[^a-zA-Z0-9-]+/gu

/**
 * The per-run job id of Prefect's cloud-run-v2 worker: the name slugged to at most 55 characters,
 * a dash, and 7 random hex digits (`CloudRunWorkerJobV2Configuration.job_name`).
 *
 * Where Prefect's id would be rejected by Cloud Run, pushpool's differs: a name that slugs to
 * nothing (Prefect: "None-<hex>") becomes "flow-run-<hex>", and a slug starting with a digit
 * (Prefect: "2024-report-<hex>") gets a "flow-run-" prefix.
 */
export function perRunJobName (name: string, suffix: string): string {
  if (!/^[0-9a-f]{7}$/.test(suffix)) throw new Error(`a per-run job name suffix is 7 lowercase hex digits, not '${suffix}'`)
  const maxLength = JOB_ID_MAX_LENGTH - 1 - PER_RUN_SUFFIX_LENGTH
  let slug = slugify(name, { maxLength, disallowed: JOB_NAME_DISALLOWED })
  if (slug === '') slug = 'flow-run'
  else if (!/^[a-z]/.test(slug)) slug = slugify(`flow-run-${slug}`, { maxLength, disallowed: JOB_NAME_DISALLOWED })
  return `${slug}-${suffix}`
}

/**
 * A stable job id for reusing one job across runs with the same spec: a readable slug of
 * `readableSlugSource` (a pool or deployment name), a dash, and the first 12 characters of
 * `specHash`, short enough that Cloud Run's execution names stay within 63 characters.
 */
export function reuseJobId (readableSlugSource: string, specHash: string): string {
  const hash = specHash.toLowerCase()
  if (!/^[0-9a-z]{12,}$/.test(hash)) throw new Error('a spec hash must be at least 12 lowercase letters or digits')
  const maxLength = JOB_ID_MAX_LENGTH - EXECUTION_SUFFIX_LENGTH - 1 - REUSE_HASH_LENGTH
  let slug = slugify(readableSlugSource, { maxLength, disallowed: JOB_NAME_DISALLOWED })
  if (!/^[a-z]/.test(slug)) slug = slugify(`job-${slug}`, { maxLength, disallowed: JOB_NAME_DISALLOWED })
  return `${slug}-${hash.slice(0, REUSE_HASH_LENGTH)}`
}
