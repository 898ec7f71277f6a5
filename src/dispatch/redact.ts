// Redaction of rendered jobs before they are stored or returned. Env values are hidden unless
// their name is known to be harmless: an unknown variable may carry a token, so it is redacted by
// default rather than by a list of suspicious names. Secret Manager references are kept, since
// they name a secret without revealing it.
import type { V2Job } from '../jobconfig/v2-job.ts'

export const REDACTED = '[redacted]'

const SAFE_ENV = /^(PREFECT__[A-Z_]+|PREFECT_API_URL|PREFECT_LOGGING_LEVEL|PUSHPOOL_DISPATCH_ID)$/

export function redactJob (job: V2Job): V2Job {
  const copy = structuredClone(job)
  for (const container of copy.template?.template?.containers ?? []) {
    for (const env of container.env ?? []) {
      if (env.value !== undefined && !SAFE_ENV.test(env.name)) env.value = REDACTED
    }
  }
  return copy
}
