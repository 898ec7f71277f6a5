// The service account pushpool launches a run as, through IAM Credentials, instead of as itself:
// the job variable `impersonate_service_account`. It is read from the job variables the template was
// filled from (the pool's default, then the deployment's and the flow run's value, as Prefect merges
// them), never from job_configuration: the job itself stays exactly what Prefect's worker renders,
// which ignores a variable its job_configuration does not refer to.
import { TemplateError } from '../failures.ts'

export const IMPERSONATE_VARIABLE = 'impersonate_service_account'

/**
 * A service account's email: a user-managed account (`name@project.iam.gserviceaccount.com`) or a
 * Google-managed one (`123-compute@developer.gserviceaccount.com`, `project@appspot.gserviceaccount.com`),
 * all of which IAM Credentials can mint tokens for. A user's email cannot be impersonated, so it is
 * refused here, with the fix, rather than by IAM at launch.
 */
export const SERVICE_ACCOUNT_EMAIL = /^[a-z0-9][a-z0-9-]*@[a-z0-9][a-z0-9.-]*\.gserviceaccount\.com$/

/** The account to impersonate, lower-cased (IAM does not tell case apart), or null: none, null or empty. */
export function impersonationTarget (variables: Record<string, unknown>): string | null {
  const value = variables[IMPERSONATE_VARIABLE]
  if (value === undefined || value === null) return null
  const field = `variables.${IMPERSONATE_VARIABLE}`
  if (typeof value !== 'string') {
    throw new TemplateError(field, `Job variable '${IMPERSONATE_VARIABLE}' must be a service account's email as a string, ` +
      `not ${JSON.stringify(value).slice(0, 80)}; set it as e.g. "pushpool-launcher@my-project.iam.gserviceaccount.com", or leave it out.`)
  }
  const email = value.trim().toLowerCase()
  if (email === '') return null
  if (!SERVICE_ACCOUNT_EMAIL.test(email)) {
    throw new TemplateError(field, `Job variable '${IMPERSONATE_VARIABLE}' is ${JSON.stringify(value.slice(0, 100))}, which is not a ` +
      'service account\'s email (…@….gserviceaccount.com; a user account cannot be impersonated): set it to one such as ' +
      'pushpool-launcher@my-project.iam.gserviceaccount.com, or leave it empty to launch as pushpool itself.')
  }
  return email
}
