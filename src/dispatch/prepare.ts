// Everything a launch needs, read and rendered before any Cloud Run call: the pool's template
// rendered with Prefect's semantics, the GCP identity, and the launch plan for the job mode.
import type { Dispatch, GcpIdentityRef } from '../store/store.ts'
import type { BlockDocument, FlowRun } from '../prefect/types.ts'
import type { RunObjects } from '../prefect/worker-events.ts'
import type { DispatchDeps } from './types.ts'
import type { GcpIdentity } from '../gcp/credentials.ts'
import type { CloudRunClients } from '../gcp/clients.ts'
import type { LaunchPlan } from '../cloudrun/launcher.ts'
import type { V2Job } from '../jobconfig/v2-job.ts'
import { DISPATCH_MARKER_ENV } from '../cloudrun/launcher.ts'
import { renderJobConfiguration } from '../jobconfig/render.ts'
import type { JobConfiguration } from '../jobconfig/types.ts'
import { reuseJobId } from '../jobconfig/names.ts'
import { canonicalJson, splitForReuse } from '../jobconfig/reuse.ts'
import { PrefectRequestError } from '../prefect/client.ts'
import { NeverRetry, TemplateError } from '../failures.ts'
import { redactJob } from './redact.ts'
import { memoizedLookups } from './memoized-lookups.ts'

export interface PreparedLaunch {
  project: string
  region: string
  config: JobConfiguration
  plan: LaunchPlan
  clients: CloudRunClients
  redactedJob: V2Job
  /** Where the identity can be found again after launch, without rendering. */
  identity: GcpIdentityRef
  deploymentName: string | null
  flowName: string | null
  /** The Prefect objects the render read, for the worker's events. */
  objects: RunObjects
  /** The container's command as rendered (command, then args); empty for the image's entrypoint. */
  command: string[]
}

export type PrepareDeps = Pick<DispatchDeps, 'config' | 'prefect' | 'snapshots' | 'identities' | 'google'>

/**
 * The run's deployment was deleted. Prefect's worker cancels such a run rather than launch it
 * (workers/base.py `_submit_run`), with this message; so does pushpool.
 */
export class DeploymentGone extends NeverRetry {
  constructor (deploymentId: string) {
    super(`Deployment ${deploymentId} no longer exists, cancelled run.`)
    this.name = 'DeploymentGone'
  }
}

export async function prepareLaunch (deps: PrepareDeps, dispatch: Dispatch, knownFlowRun?: FlowRun): Promise<PreparedLaunch> {
  const { config, prefect, snapshots, identities, google } = deps
  const flowRun = knownFlowRun ?? await prefect.readFlowRun(dispatch.flowRunId)
  if (flowRun === null) throw new PrefectRequestError(`Flow run ${dispatch.flowRunId} no longer exists in Prefect`, 404)
  const [workPool, deployment, flow, prefectVersion] = await Promise.all([
    snapshots.workPool(dispatch.pool),
    flowRun.deployment_id === null ? null : prefect.readDeployment(flowRun.deployment_id),
    snapshots.flow(flowRun.flow_id),
    prefect.readServerVersion()
  ])
  if (workPool === null) throw new TemplateError('work_pool', `Work pool ${dispatch.pool} does not exist in Prefect: create it, or remove it from PUSHPOOL_POOLS`)
  if (flowRun.deployment_id !== null && deployment === null) throw new DeploymentGone(flowRun.deployment_id)

  const lookups = memoizedLookups(prefect)
  const rendered = await renderJobConfiguration({
    workPool,
    deployment,
    flowRun,
    flow,
    // The Prefect client answers null for a missing block or variable; the renderer names the field.
    lookups,
    baseEnvironment: baseEnvironment(config),
    workerName: config.workerName,
    prefectVersion
  })
  const identity = await identities.resolve(rendered.credentials, rendered.impersonateServiceAccount)
  const clients = await google.cloudRunFor(identity)
  const parent = `projects/${identity.project}/locations/${rendered.region}`
  const plan = planLaunch(config.jobMode, parent, rendered, dispatch, deployment?.name ?? dispatch.pool)
  return {
    project: identity.project,
    region: rendered.region,
    config: rendered,
    plan,
    clients,
    // The whole job as rendered, before reuse mode moves its per-run env into the RunJob overrides:
    // an operator sees every variable the run got (values redacted).
    redactedJob: redactJob(rendered.job),
    identity: identityRef(identity, rendered.credentials, lookups.documentsRead()),
    deploymentName: deployment?.name ?? null,
    flowName: flow?.name ?? null,
    objects: { flowRun, deployment, flow, workPool },
    command: [...(rendered.job.template.template.containers[0]?.command ?? []), ...(rendered.job.template.template.containers[0]?.args ?? [])]
  }
}

/**
 * A key that came from a GCP Credentials block is found again by the block's id: the block whose
 * data the template's `credentials` resolved to. A key written into the job variables themselves
 * has no id; only a render finds it again. An impersonated account is recorded with its source.
 */
function identityRef (identity: GcpIdentity, credentials: Record<string, unknown> | null, documents: BlockDocument[]): GcpIdentityRef {
  const impersonate = identity.impersonated === null ? {} : { impersonate: identity.impersonated }
  if (identity.source !== 'credentials-block') return { source: identity.source, ...impersonate }
  const wanted = canonicalJson(credentials)
  const block = documents.find(document => canonicalJson(document.data) === wanted)
  return block === undefined ? { source: 'credentials-inline', ...impersonate } : { source: 'credentials-block', blockDocumentId: block.id, ...impersonate }
}

function planLaunch (mode: 'reuse' | 'per-run', parent: string, rendered: JobConfiguration, dispatch: Dispatch, readableName: string): LaunchPlan {
  // A dispatch that was launched before keeps its job: per-run names carry a random suffix, and a
  // second name would mean a second execution.
  const notBefore = new Date(new Date(dispatch.createdAt).getTime() - 60_000)
  if (mode === 'per-run') {
    return {
      mode,
      dispatchId: dispatch.id,
      jobName: dispatch.jobName ?? `${parent}/jobs/${rendered.jobName}`,
      job: rendered.job,
      overrides: null,
      notBefore
    }
  }
  const split = splitForReuse(rendered.job)
  return {
    mode,
    dispatchId: dispatch.id,
    jobName: dispatch.jobName ?? `${parent}/jobs/${reuseJobId(readableName, split.specHash)}`,
    job: split.spec,
    overrides: {
      env: [...split.env, { name: DISPATCH_MARKER_ENV, value: dispatch.id }],
      timeoutSeconds: rendered.timeoutSeconds
    },
    notBefore
  }
}

/** What a worker's own settings would hand down to the job: where Prefect is and how to log in. */
function baseEnvironment (config: PrepareDeps['config']): Record<string, string> {
  const env: Record<string, string> = { PREFECT_API_URL: config.jobPrefectApiUrl ?? config.prefectApiUrl }
  if (config.prefectAuthString !== null) env.PREFECT_API_AUTH_STRING = config.prefectAuthString
  if (config.prefectApiKey !== null) env.PREFECT_API_KEY = config.prefectApiKey
  return env
}
