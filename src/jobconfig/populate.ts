// How Prefect's worker fills a work pool's `job_configuration` from job variables
// (prefect/workers/base.py `resolve_for_flow_run` and `from_template_and_values`), up to the
// point where the worker's pydantic model takes over.

import { TemplateError } from '../failures.ts'
import type { BaseJobTemplate } from '../prefect/types.ts'
import type { PrefectLookups } from './types.ts'
import { applyValues, isPlainObject, resolveBlockDocumentReferences, resolveVariables, type ApplyValuesHooks } from './templating.ts'
import { pythonTruthy } from './python.ts'

/**
 * The job variables of a flow run: the deployment's, then the flow run's on top. `env` is merged
 * key by key (when the deployment has an `env` object); every other variable is replaced whole.
 */
export function mergeJobVariables (deployment: Record<string, unknown> | null, flowRun: Record<string, unknown> | null): Record<string, unknown> {
  const merged = structuredClone(deployment ?? {})
  const overrides = structuredClone(flowRun ?? {})
  if (isPlainObject(merged.env) && Object.hasOwn(overrides, 'env')) {
    if (!isPlainObject(overrides.env)) {
      throw new TemplateError('variables.env', 'The flow run\'s job variable \'env\' is not an object, so it cannot be merged into the deployment\'s env; set it as {"NAME": "value", …}.')
    }
    merged.env = { ...merged.env, ...overrides.env }
    delete overrides.env
  }
  return { ...merged, ...overrides }
}

export interface PopulatedJobConfiguration {
  configuration: Record<string, unknown>
  /** The job variables the placeholders were filled from: the pool's defaults with the values laid over them. */
  variables: Record<string, unknown>
}

/**
 * `from_template_and_values` without the final model: variable defaults (nulls excluded), default
 * `env` merged into the template's env, dotted keys (`"env.FOO": "x"`) expanded, the values laid
 * over the defaults with `env` merged, placeholders applied, then block references and Prefect
 * variables resolved.
 */
export async function populateJobConfiguration (template: BaseJobTemplate, values: Record<string, unknown>, lookups: PrefectLookups, hooks: ApplyValuesHooks): Promise<PopulatedJobConfiguration> {
  if (!isPlainObject(template.job_configuration)) {
    throw new TemplateError('job_configuration', 'The work pool\'s base job template has no "job_configuration" object; restore it (e.g. from `prefect work-pool get-default-base-job-template`).')
  }
  if (!isPlainObject(template.variables)) {
    throw new TemplateError('variables', 'The work pool\'s base job template has no "variables" object; restore it (e.g. from `prefect work-pool get-default-base-job-template`).')
  }
  const configuration = structuredClone(template.job_configuration)
  const variables = variableDefaults(template.variables.properties)

  // Python tests `if variables.get("env")`: an empty env changes nothing.
  if (pythonTruthy(variables.env)) {
    configuration.env = isPlainObject(configuration.env)
      ? { ...configuration.env, ...requireEnvObject(variables.env, 'variables.env.default') }
      : variables.env
  }
  Object.assign(variables, expandDottedKeys(values))
  if (isPlainObject(configuration.env) && pythonTruthy(variables.env)) {
    configuration.env = { ...configuration.env, ...requireEnvObject(variables.env, 'variables.env') }
  }

  const applied = applyValues(configuration, variables, hooks)
  const withBlocks = await resolveBlockDocumentReferences(applied, lookups, 'job_configuration')
  return { configuration: await resolveVariables(withBlocks, lookups, 'job_configuration') as Record<string, unknown>, variables }
}

function variableDefaults (properties: unknown): Record<string, unknown> {
  const defaults: Record<string, unknown> = {}
  if (!isPlainObject(properties)) return defaults
  for (const [name, property] of Object.entries(properties)) {
    if (isPlainObject(property) && property.default !== undefined && property.default !== null) defaults[name] = structuredClone(property.default)
  }
  return defaults
}

function requireEnvObject (env: unknown, field: string): Record<string, unknown> {
  if (!isPlainObject(env)) {
    throw new TemplateError(field, `'${field}' must be an object of environment variables to be merged into the job template's env; set it as {"NAME": "value", …}.`)
  }
  return env
}

/** Dotted keys first, then plain keys on top (deep-merged when both are objects). */
function expandDottedKeys (values: Record<string, unknown>): Record<string, unknown> {
  const expanded: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(values)) {
    if (key.includes('.')) setInDict(expanded, key, structuredClone(value))
  }
  for (const [key, value] of Object.entries(values)) {
    if (key.includes('.')) continue
    const current = expanded[key]
    expanded[key] = Object.hasOwn(expanded, key) && isPlainObject(current) && isPlainObject(value)
      ? deepMerge(current, value)
      : structuredClone(value)
  }
  return expanded
}

function setInDict (target: Record<string, unknown>, dottedKey: string, value: unknown): void {
  const keys = dottedKey.replaceAll('[', '.').replaceAll(']', '').split('.')
  let node = target
  for (const key of keys.slice(0, -1)) {
    if (!Object.hasOwn(node, key)) node[key] = {}
    const next = node[key]
    if (!isPlainObject(next)) {
      throw new TemplateError(`variables.${dottedKey}`, `Job variable '${dottedKey}' goes through '${key}', which another job variable already sets to a non-object; keep only one of them.`)
    }
    node = next
  }
  node[keys[keys.length - 1]] = value
}

function deepMerge (base: Record<string, unknown>, overlay: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(overlay)) {
    const current = merged[key]
    merged[key] = Object.hasOwn(merged, key) && isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : structuredClone(value)
  }
  return merged
}
