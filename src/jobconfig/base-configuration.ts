// The fields every Prefect job configuration has (prefect/workers/base.py BaseJobConfiguration)
// and what `prepare_for_flow_run` does with them before a worker adds its own steps.

import { TemplateError } from '../failures.ts'
import type { Deployment, Flow, FlowRun, WorkPool } from '../prefect/types.ts'
import { prefectLabels } from './labels.ts'
import { applyValues, NOT_SET, type ApplyValuesHooks } from './templating.ts'
import { readEnv, readOptionalString, readStringMap, type Configuration } from './fields.ts'
import { pythonTruthy } from './python.ts'

export interface BaseConfiguration {
  env: Record<string, string | null>
  labels: Record<string, string>
  name: string | null
}

export function readBaseConfiguration (configuration: Configuration): BaseConfiguration {
  // `command` is only checked: Prefect's model refuses a command that is not a string, but the
  // Cloud Run workers take the container's command from the job body, never from this field.
  readOptionalString(configuration, 'command')
  return {
    env: readEnv(configuration, 'env'),
    labels: readStringMap(configuration, 'labels'),
    name: readOptionalString(configuration, 'name')
  }
}

export interface FlowRunContext {
  flowRun: FlowRun
  deployment: Deployment | null
  flow: Flow | null
  workPool: WorkPool
  workerName: string
  workerId?: string
  baseEnvironment: Record<string, string>
  prefectVersion: string
}

export interface PreparedForFlowRun {
  /** The container's environment: the worker's settings, run ids and attribution, then the template's env. */
  env: Record<string, string>
  /** Prefect's labels with the template's `labels` on top, not yet sanitised for GCP. */
  labels: Record<string, string>
  /** The infrastructure name: the rendered `name` job variable, or the flow run's name. */
  name: string
}

export function prepareForFlowRun (base: BaseConfiguration, context: FlowRunContext, hooks: ApplyValuesHooks): PreparedForFlowRun {
  const { flowRun, deployment, flow, workerName } = context
  const env: Record<string, string | null> = {
    ...context.baseEnvironment,
    PREFECT__FLOW_RUN_ID: flowRun.id,
    ...attributionEnvironment(context),
    ...base.env
  }
  return {
    env: Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== null)),
    labels: {
      ...prefectLabels({ flowRun, workPool: context.workPool, workerName, flow, deployment, prefectVersion: context.prefectVersion }),
      ...base.labels
    },
    name: renderName(base.name, flowRun, flow, hooks)
  }
}

/** The variables a flow run's API calls use for attribution headers. */
function attributionEnvironment ({ flowRun, deployment, flow, workerName, workerId }: FlowRunContext): Record<string, string> {
  const attribution: Record<string, string> = {}
  if (workerId !== undefined) attribution.PREFECT__WORKER_ID = workerId
  attribution.PREFECT__WORKER_NAME = workerName
  if (flowRun.flow_id) attribution.PREFECT__FLOW_ID = flowRun.flow_id
  if (flow?.name) attribution.PREFECT__FLOW_NAME = flow.name
  if (flowRun.deployment_id) attribution.PREFECT__DEPLOYMENT_ID = flowRun.deployment_id
  if (deployment?.name) attribution.PREFECT__DEPLOYMENT_NAME = deployment.name
  return attribution
}

/** A `name` may use `{{ ctx.flow.* }}` and `{{ ctx.flow_run.* }}`; an empty result falls back to the flow run's name. */
function renderName (template: string | null, flowRun: FlowRun, flow: Flow | null, hooks: ApplyValuesHooks): string {
  let name: unknown = template
  if (template) {
    const rendered = applyValues(template, { ctx: { flow: flow ?? {}, flow_run: flowRun } }, hooks)
    if (rendered !== NOT_SET) name = rendered
  }
  if (!pythonTruthy(name)) return flowRun.name
  if (typeof name !== 'string') {
    throw new TemplateError('job_configuration.name', 'The job name template resolves to something other than text; use placeholders such as {{ ctx.flow_run.name }} inside a string.')
  }
  return name
}
