// The Cloud Run workers refuse a rendered `job_body` that lacks the parts they write into, by
// diffing it against a minimal body with JSON Patch: an "add" means a path is missing, a
// "replace" means a path holds a value of the wrong kind (prefect_gcp/workers/cloud_run*.py
// `_ensure_job_includes_all_required_components` / `_ensure_job_has_compatible_values`). This is
// the same comparison, read off the minimal body directly.

import { isDeepStrictEqual } from 'node:util'
import { TemplateError } from '../failures.ts'
import { isPlainObject } from './templating.ts'

interface ShapeProblems {
  missing: string[]
  incompatible: string[]
}

/** The configuration's `job_body`, once it is known to have every part `minimalBody` has. */
export function readJobBody (configuration: Record<string, unknown>, minimalBody: Record<string, unknown>, poolType: string): Record<string, unknown> {
  const jobBody = configuration.job_body
  if (!isPlainObject(jobBody)) {
    throw new TemplateError('job_configuration.job_body', `The ${poolType} job configuration has no job_body object; restore it in the work pool's base job template.`)
  }
  const problems: ShapeProblems = { missing: [], incompatible: [] }
  compare(jobBody, minimalBody, '', problems)
  if (problems.missing.length > 0) {
    throw new TemplateError('job_configuration.job_body',
      `The ${poolType} job body is missing ${problems.missing.sort().join(', ')}; restore ${problems.missing.length === 1 ? 'it' : 'them'} in the work pool's base job template (compare with \`prefect work-pool get-default-base-job-template --type ${poolType}\`).`)
  }
  if (problems.incompatible.length > 0) {
    throw new TemplateError('job_configuration.job_body',
      `The ${poolType} job body has incompatible values: ${problems.incompatible.sort().join(', ')}; fix the work pool's base job template.`)
  }
  return jobBody
}

function compare (value: unknown, minimal: unknown, path: string, problems: ShapeProblems): void {
  if (isPlainObject(minimal)) {
    if (!isPlainObject(value)) { problems.incompatible.push(`${path || '/'} must be an object`); return }
    for (const [key, expected] of Object.entries(minimal)) {
      const child = `${path}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`
      if (Object.hasOwn(value, key)) compare(value[key], expected, child, problems)
      else problems.missing.push(child)
    }
  } else if (Array.isArray(minimal)) {
    if (!Array.isArray(value)) { problems.incompatible.push(`${path} must be a list`); return }
    minimal.forEach((expected, index) => {
      if (index < value.length) compare(value[index], expected, `${path}/${index}`, problems)
      else problems.missing.push(`${path}/${index}`)
    })
  } else if (!isDeepStrictEqual(value, minimal)) {
    problems.incompatible.push(`${path} must be ${JSON.stringify(minimal)}`)
  }
}
