// The job-configuration model's contract: what a render needs (the Prefect objects and the API
// reads it may make) and what it produces. Kept apart from the renderer so its steps depend on
// these types, not on the renderer that calls them.
import type { BlockDocument, Deployment, Flow, FlowRun, WorkPool } from '../prefect/types.ts'
import type { V2Job } from './v2-job.ts'

/**
 * The Prefect API reads rendering needs, answering null (a variable: undefined) for what does not
 * exist, as PrefectClient does. The renderer words every failure itself, naming the field that
 * refers to the object and the fix; a lookup that fails with RetryLater (an outage) is passed on.
 */
export interface PrefectLookups {
  readBlockDocument(id: string): Promise<BlockDocument | null> // include_secrets=true
  readBlockDocumentByName(typeSlug: string, name: string): Promise<BlockDocument | null>
  readVariable(name: string): Promise<unknown> // undefined when absent
}

export interface RenderRequest {
  workPool: WorkPool
  deployment: Deployment | null
  flowRun: FlowRun
  flow: Flow | null
  lookups: PrefectLookups
  /** What Prefect's worker process would pass down from its own settings (BaseJobConfiguration._base_environment):
   *  e.g. PREFECT_API_URL and PREFECT_API_AUTH_STRING or PREFECT_API_KEY. */
  baseEnvironment: Record<string, string>
  workerName: string // e.g. 'pushpool'
  workerId?: string
  prefectVersion: string // for the default image tag, e.g. '3.8.8'
  pythonVersion?: string // default '3.12'
  randomSuffix?: () => string // 7 hex chars for the per-run job name; injectable for tests
}

export interface JobConfiguration {
  kind: 'cloud-run-v2' | 'cloud-run'
  region: string
  credentials: Record<string, unknown> | null // the resolved GcpCredentials block data (service_account_info, project, ...) or null → ADC
  impersonateServiceAccount: string | null // the job variable impersonate_service_account: the account pushpool launches as, through IAM Credentials
  keepJob: boolean
  timeoutSeconds: number
  jobName: string // Prefect's per-run job id: slug (≤55) + '-' + 7 hex (v2 rule)
  job: V2Job // the Cloud Run v2 Job body exactly as Prefect's v2 worker would send it (v1 pools: converted)
  warnings: string[] // e.g. v1 labels/annotations dropped for the v2 API, plaintext credential warnings
}
