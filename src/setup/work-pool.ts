// The work pool: a cloud-run-v2 pool with prefect-gcp's default base job template, or an existing
// Cloud Run pool adopted as it is. The template is shipped as JSON (generated once with `prefect
// work-pool get-default-base-job-template --type cloud-run-v2`; a test keeps it equal to what the
// installed prefect-gcp prints), so setup needs no Python.
import type { BaseJobTemplate, WorkPool } from '../prefect/types.ts'
import { IMPERSONATE_VARIABLE } from '../jobconfig/impersonation.ts'
import { changedPaths } from './json-diff.ts'
import type { SetupPrefectApi, WorkPoolUpdate } from './prefect-api.ts'
import { SetupFailure, type Step } from './step.ts'
import shippedTemplate from './cloud-run-v2-base-job-template.json' with { type: 'json' }

export const POOL_TYPE = 'cloud-run-v2'

/** A Secret Manager secret as the template's SecretKeySelector names it. */
export interface SecretRef {
  /** The secret's id in the jobs' project, or `projects/<project>/secrets/<id>` in another. */
  secret: string
  version: string
}

export interface WorkPoolOptions {
  pool: string
  /** Use an existing Cloud Run pool as it is: its type, template and limit are left alone. */
  adopt: boolean
  region?: string
  image?: string
  /** Name of a GCP Credentials block that jobs use unless a deployment says otherwise. */
  credentialsBlock?: string
  concurrencyLimit?: number
  /** Where jobs read PREFECT_API_AUTH_STRING from, instead of a plain environment value. */
  prefectAuthStringSecret?: SecretRef
  /** Where jobs read PREFECT_API_KEY from, instead of a plain environment value. */
  prefectApiKeySecret?: SecretRef
  /** The service account jobs run as, unless a deployment says otherwise. */
  serviceAccount?: string
  /** The service account pushpool launches the pool's runs as (IAM Credentials), unless a deployment says otherwise. */
  impersonateServiceAccount?: string
}

/** The template variables whose defaults the options set. Absent options keep the pool's current value. */
const OPTION_DEFAULTS = ['region', 'image', 'credentials', 'prefect_api_auth_string_secret', 'prefect_api_key_secret', 'service_account_name'] as const

export function defaultCloudRunV2Template (): BaseJobTemplate {
  return structuredClone(shippedTemplate) as BaseJobTemplate
}

export async function planWorkPool (api: SetupPrefectApi, options: WorkPoolOptions): Promise<Step> {
  const existing = await api.readWorkPool(options.pool)
  if (options.adopt) return adoptStep(options.pool, existing)
  if (existing !== null && existing.type !== POOL_TYPE) {
    throw new SetupFailure(`Work pool "${options.pool}" exists with type "${existing.type}", not "${POOL_TYPE}": ` +
      'pass --adopt to serve it as it is, or choose another --pool')
  }
  const credentials = options.credentialsBlock === undefined
    ? undefined
    : { $ref: { block_document_id: await credentialsBlockId(api, options.credentialsBlock) } }
  const template = desiredTemplate(existing?.base_job_template ?? null, {
    region: options.region,
    image: options.image,
    credentials,
    prefect_api_auth_string_secret: options.prefectAuthStringSecret,
    prefect_api_key_secret: options.prefectApiKeySecret,
    service_account_name: options.serviceAccount
  }, options.impersonateServiceAccount)

  if (existing === null) {
    const pool = {
      name: options.pool,
      type: POOL_TYPE,
      base_job_template: template,
      ...(options.concurrencyLimit !== undefined ? { concurrency_limit: options.concurrencyLimit } : {})
    }
    return { kind: 'work pool', name: options.pool, outcome: 'create', changed: [], shown: pool, apply: () => api.createWorkPool(pool) }
  }

  const update: WorkPoolUpdate = {}
  const changed = changedPaths(existing.base_job_template, template).map(path => `base_job_template.${path}`)
  if (changed.length > 0) update.base_job_template = template
  // The limit is often tuned in the UI, so it is managed only when the option asks for it.
  if (options.concurrencyLimit !== undefined && existing.concurrency_limit !== options.concurrencyLimit) {
    update.concurrency_limit = options.concurrencyLimit
    changed.push('concurrency_limit')
  }
  return {
    kind: 'work pool',
    name: options.pool,
    outcome: changed.length > 0 ? 'update' : 'unchanged',
    changed,
    shown: { name: options.pool, type: existing.type, concurrency_limit: update.concurrency_limit ?? existing.concurrency_limit, base_job_template: template },
    apply: async () => { if (changed.length > 0) await api.updateWorkPool(options.pool, update) }
  }
}

function adoptStep (name: string, existing: WorkPool | null): Step {
  if (existing === null) {
    throw new SetupFailure(`Work pool "${name}" does not exist, so there is nothing to adopt: drop --adopt to create it`)
  }
  if (!existing.type.includes('cloud-run')) {
    throw new SetupFailure(`Work pool "${name}" has type "${existing.type}": pushpool launches Cloud Run jobs, ` +
      'so it can adopt only cloud-run and cloud-run-v2 pools')
  }
  // Prefect Cloud already pushes these runs itself; a second launcher would only race it.
  if (existing.type.endsWith(':push')) {
    throw new SetupFailure(`Work pool "${name}" is a Prefect Cloud push pool ("${existing.type}"), which Prefect Cloud serves itself: ` +
      'create a cloud-run-v2 pool for pushpool instead')
  }
  return {
    kind: 'work pool',
    name,
    outcome: 'unchanged',
    changed: [],
    note: `adopted as it is, type ${existing.type}`,
    // Not the template: one set up by hand may carry secrets in env defaults, and it is not ours to show.
    shown: { name, type: existing.type, concurrency_limit: existing.concurrency_limit, base_job_template: '(left as it is)' },
    apply: async () => {}
  }
}

/**
 * prefect-gcp's template with the options' defaults. An option not given keeps the pool's current
 * default, so running setup again without `--region` does not undo an earlier `--region`.
 */
function desiredTemplate (current: BaseJobTemplate | null, overrides: Record<typeof OPTION_DEFAULTS[number], unknown>,
  impersonate: string | undefined): BaseJobTemplate {
  const template = defaultCloudRunV2Template()
  // The shipped template declares every one of OPTION_DEFAULTS.
  const properties = template.variables.properties!
  for (const key of OPTION_DEFAULTS) {
    // A pool made elsewhere may have any template, even `{}`.
    const value = overrides[key] ?? current?.variables?.properties?.[key]?.default
    if (value !== undefined) properties[key].default = value
  }
  const impersonated = impersonate ?? current?.variables?.properties?.[IMPERSONATE_VARIABLE]?.default
  if (typeof impersonated === 'string') properties[IMPERSONATE_VARIABLE] = impersonationVariable(impersonated)
  return template
}

/**
 * pushpool's own variable, which prefect-gcp's template does not declare (its job_configuration
 * does not refer to it, so Prefect's worker ignores it): declared so that Prefect's UI shows it on
 * the pool and on deployments, and checks that a value is a string.
 */
function impersonationVariable (email: string): Record<string, unknown> {
  return {
    title: 'Impersonate Service Account',
    description: 'The service account pushpool launches this pool\'s runs as, impersonating it through the IAM Credentials ' +
      'API (keyless): pushpool\'s own service account needs roles/iam.serviceAccountTokenCreator on it. Empty: pushpool ' +
      'launches as itself.',
    type: 'string',
    default: email
  }
}

async function credentialsBlockId (api: SetupPrefectApi, name: string): Promise<string> {
  const block = await api.readBlockDocument('gcp-credentials', name, false)
  if (block === null) {
    throw new SetupFailure(`Prefect has no GCP Credentials block named "${name}": create one (prefect-gcp's GcpCredentials ` +
      'with service_account_info and project), or drop --credentials-block to use pushpool\'s own credentials')
  }
  return block.id
}
