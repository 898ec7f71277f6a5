// A render request for a flow run without a deployment, for the tests that only vary the template
// and the flow run's job variables.
import { randomUUID } from 'node:crypto'
import type { RenderRequest } from '../../src/jobconfig/types.ts'
import type { BaseJobTemplate, FlowRun } from '../../src/prefect/types.ts'

export function deploymentlessRequest (template: BaseJobTemplate, jobVariables: Record<string, unknown>): RenderRequest {
  const flowRun = { id: randomUUID(), name: 'crimson-wombat', flow_id: 'f', deployment_id: null, job_variables: jobVariables } as unknown as FlowRun
  return {
    workPool: { id: randomUUID(), name: 'pool', type: 'cloud-run-v2', base_job_template: template, is_paused: false, concurrency_limit: null },
    deployment: null,
    flowRun,
    flow: { id: 'f', name: 'train' },
    lookups: { readBlockDocument: async () => null, readBlockDocumentByName: async () => null, readVariable: async () => undefined },
    baseEnvironment: { PREFECT_API_URL: 'http://prefect.internal/api' },
    workerName: 'pushpool',
    prefectVersion: '3.8.8',
    randomSuffix: () => 'abc1234'
  }
}
