// Copies the objects pushpool reads for one dispatch from a real Prefect server — the work pool
// (with prefect-gcp's cloud-run-v2 template and a GCP Credentials block as default credentials),
// its queue, a deployment, its flow, a flow run and the block — to seed the in-memory stand-in.
import type { RealPrefect } from './peers.ts'
import type { StandInSeed } from '../src/devstack/prefect-standin.ts'

export async function captureSeed (prefect: RealPrefect, pool: string, deploymentId: string): Promise<StandInSeed> {
  const f = prefect.fixtures
  const run = await f.createFlowRun(deploymentId)
  const workPool = await f.request<Record<string, any>>('GET', `/work_pools/${encodeURIComponent(pool)}`)
  const blockIds = new Set<string>()
  JSON.stringify(workPool.base_job_template, (key, value) => {
    if (key === 'block_document_id' && typeof value === 'string') blockIds.add(value)
    return value
  })
  const blockDocuments = await Promise.all([...blockIds].map(id => f.request<Record<string, any>>('GET', `/block_documents/${id}?include_secrets=true`)))
  // Leave the captured run out of every Scheduled-run query the bench makes.
  await f.setState(run.id, { type: 'CANCELLED', name: 'Cancelled' }, true)
  return {
    version: await f.request<string>('GET', '/admin/version'),
    workPool,
    workQueue: await f.request('GET', `/work_queues/${run.work_queue_id}`),
    deployment: await f.request('GET', `/deployments/${deploymentId}`),
    flow: await f.request('GET', `/flows/${run.flow_id}`),
    flowRun: run as unknown as Record<string, any>,
    blockDocuments
  }
}
