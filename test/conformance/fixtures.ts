// The stored base job templates the conformance cases start from:
//   cloud-run-v2.default.json / cloud-run.default.json: what the installed prefect-gcp offers
//     (`prefect work-pool get-default-base-job-template --type …`); checked against the venv by
//     the conformance run, so a prefect-gcp upgrade that changes them is noticed;
//   cloud-run-v2.registry-6939db85.json: the prefect-collection-registry's v2 template at commit
//     6939db85 (image prefecthq/prefect:2-latest, timeout at most 86400, no env_from_secrets,
//     prefect_api_*_secret or cloudsql_instances), as pools created from the UI without
//     prefect-gcp installed still carry it.

import { readFileSync } from 'node:fs'
import type { BaseJobTemplate } from '../../src/prefect/types.ts'

export type TemplateFixture = 'cloud-run-v2.default' | 'cloud-run.default' | 'cloud-run-v2.registry-6939db85'

export function loadTemplate (fixture: TemplateFixture): BaseJobTemplate {
  return JSON.parse(readFileSync(new URL(`./fixtures/${fixture}.json`, import.meta.url), 'utf8')) as BaseJobTemplate
}
