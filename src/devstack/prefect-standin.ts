// A loopback stand-in for the Prefect API that answers from memory. It serves only the routes
// pushpool calls, from a seed of Prefect objects. Orchestration is reduced to what matters here:
// Scheduled → Pending is accepted once, a second Pending is aborted, as Prefect's rules do.
// Two users:
// - the bench's cost figures, so that they measure pushpool's own work rather than Prefect's
//   database; its seed is copied from a real Prefect server (bench/seed.ts), so payload sizes and
//   shapes are Prefect's. It runs in its own process (`node src/devstack/prefect-standin.ts
//   <seed.json>`, prints {"apiUrl":…}) so its CPU is not pushpool's nor the load generator's;
//   routes under /_bench create runs and report counts;
// - the training run of the server script's code cache (scripts/code-cache-peers.ts), in the
//   build, where no Prefect server is at hand.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import type { AddressInfo } from 'node:net'

export interface StandInSeed {
  version: string
  workPool: Record<string, any>
  workQueue: Record<string, any>
  deployment: Record<string, any>
  flow: Record<string, any>
  flowRun: Record<string, any>
  blockDocuments: Array<Record<string, any>>
}

export interface StandIn {
  apiUrl: string
  createFlowRuns (count: number, scheduledAt?: Date): string[]
  /** Moves a run to a state as its engine would (e.g. COMPLETED when the flow ends). */
  setFlowRunState (id: string, type: string, name: string): void
  close (): Promise<void>
}

interface Run { json: Record<string, any>, states: Array<Record<string, any>> }

/**
 * `latencyMs` delays every answer to the Prefect API (not the bench's own /_bench routes), as a
 * Prefect server across a network would.
 */
export async function startPrefectStandIn (seed: StandInSeed, port = 0, latencyMs = 0): Promise<StandIn> {
  const runs = new Map<string, Run>()
  const calls = new Map<string, number>()
  const poolName: string = seed.workPool.name
  const blocks = new Map(seed.blockDocuments.map(b => [b.id as string, JSON.stringify(b)]))
  const cached = {
    version: JSON.stringify(seed.version),
    workPool: JSON.stringify(seed.workPool),
    workQueue: JSON.stringify(seed.workQueue),
    deployment: JSON.stringify(seed.deployment),
    flow: JSON.stringify(seed.flow)
  }

  const newState = (type: string, name: string, flowRunId: string, extra: Record<string, unknown> = {}): Record<string, any> => ({
    id: randomUUID(),
    type,
    name,
    timestamp: new Date().toISOString(),
    message: null,
    data: null,
    state_details: { ...seed.flowRun.state.state_details, flow_run_id: flowRunId, ...extra }
  })

  const createFlowRuns = (count: number, scheduledAt = new Date()): string[] => {
    const ids: string[] = []
    for (let i = 0; i < count; i++) {
      const id = randomUUID()
      const at = scheduledAt.toISOString()
      const state = newState('SCHEDULED', 'Scheduled', id, { scheduled_time: at })
      const json = {
        ...structuredClone(seed.flowRun),
        id,
        name: `bench-${id.slice(0, 8)}`,
        created: at,
        updated: at,
        expected_start_time: at,
        next_scheduled_start_time: at,
        state_id: state.id,
        state_type: 'SCHEDULED',
        state_name: 'Scheduled',
        infrastructure_pid: null,
        state
      }
      runs.set(id, { json, states: [state] })
      ids.push(id)
    }
    return ids
  }

  const setState = (run: Run, proposed: { type: string, name: string, message?: string | null }): Record<string, any> => {
    const current = run.json.state.type as string
    const terminal = ['COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED']
    if ((proposed.type === 'PENDING' && current !== 'SCHEDULED') || terminal.includes(current)) {
      return { status: 'ABORT', state: null, details: { type: 'abort_details', reason: `This run is in a ${current} state and cannot transition to a ${proposed.type} state.` } }
    }
    const state: Record<string, any> = { ...newState(proposed.type, proposed.name, run.json.id), message: proposed.message ?? null }
    run.json = { ...run.json, state, state_id: state.id, state_type: state.type, state_name: state.name, updated: state.timestamp }
    run.states.push(state)
    return { status: 'ACCEPT', state, details: { type: 'accept_details' } }
  }

  const handle = (req: IncomingMessage, body: string, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x')
    const path = url.pathname.replace(/^\/api/, '').replace(/\/+$/, '')
    const parts = path.split('/').slice(1)
    const send = (status: number, json?: string): void => {
      if (json === undefined) { res.writeHead(status).end(); return }
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) }).end(json)
    }
    const route = `${req.method} /${parts[0] ?? ''}${parts.length > 2 ? `/{}/${parts.slice(2).join('/')}` : parts.length > 1 ? '/{}' : ''}`
    calls.set(route, (calls.get(route) ?? 0) + 1)
    const json = (): any => body === '' ? {} : JSON.parse(body)

    if (req.method === 'GET' && path === '/admin/version') return send(200, cached.version)
    if (parts[0] === 'flow_runs' && parts.length === 2 && parts[1] !== 'count') {
      const run = runs.get(parts[1])
      if (run === undefined) return send(404, '{"detail":"Flow run not found"}')
      if (req.method === 'GET') return send(200, JSON.stringify(run.json))
      if (req.method === 'PATCH') { Object.assign(run.json, json()); return send(204) }
    }
    if (req.method === 'POST' && parts[0] === 'flow_runs' && parts[2] === 'set_state') {
      const run = runs.get(parts[1])
      if (run === undefined) return send(404, '{"detail":"Flow run not found"}')
      return send(201, JSON.stringify(setState(run, json().state)))
    }
    if (req.method === 'POST' && path === '/flow_runs/count') {
      const types: string[] = json().flow_runs?.state?.type?.any_ ?? []
      let count = 0
      for (const run of runs.values()) if (types.includes(run.json.state.type)) count++
      return send(200, String(count))
    }
    if (req.method === 'GET' && path === '/flow_run_states') {
      const run = runs.get(url.searchParams.get('flow_run_id') ?? '')
      return send(200, JSON.stringify(run?.states ?? []))
    }
    if (req.method === 'GET' && parts[0] === 'deployments' && parts.length === 2) {
      return parts[1] === seed.deployment.id ? send(200, cached.deployment) : send(404, '{"detail":"Deployment not found"}')
    }
    if (req.method === 'GET' && parts[0] === 'flows' && parts.length === 2) {
      return parts[1] === seed.flow.id ? send(200, cached.flow) : send(404, '{"detail":"Flow not found"}')
    }
    if (req.method === 'GET' && parts[0] === 'work_queues' && parts.length === 2) {
      return parts[1] === seed.workQueue.id ? send(200, cached.workQueue) : send(404, '{"detail":"Work queue not found"}')
    }
    if (parts[0] === 'work_pools' && decodeURIComponent(parts[1] ?? '') === poolName) {
      if (req.method === 'GET' && parts.length === 2) return send(200, cached.workPool)
      if (req.method === 'POST' && parts[2] === 'get_scheduled_flow_runs') {
        const { scheduled_before: before, limit } = json()
        const due = [...runs.values()]
          .filter(r => r.json.state.type === 'SCHEDULED' && (before === undefined || r.json.next_scheduled_start_time <= new Date(before).toISOString()))
          .slice(0, limit ?? 100)
          .map(r => ({ work_pool_id: seed.workPool.id, work_queue_id: seed.workQueue.id, flow_run: r.json }))
        return send(200, JSON.stringify(due))
      }
      if (req.method === 'POST' && parts[2] === 'workers' && parts[3] === 'heartbeat') return send(204)
    }
    if (req.method === 'GET' && parts[0] === 'block_documents' && parts.length === 2) {
      const block = blocks.get(parts[1])
      return block === undefined ? send(404, '{"detail":"Block document not found"}') : send(200, block)
    }
    if (req.method === 'GET' && parts[0] === 'variables') return send(404, '{"detail":"Variable not found"}')
    // The activity writer's batches (flow-run log lines, events): taken and dropped, as Prefect answers them.
    if (req.method === 'POST' && parts.length === 1 && (parts[0] === 'logs' || parts[0] === 'events')) return send(parts[0] === 'logs' ? 201 : 204)
    // Bench control routes.
    if (req.method === 'POST' && path === '/_bench/flow_runs') {
      const { count, scheduled_at: at } = json()
      return send(200, JSON.stringify(createFlowRuns(count ?? 1, at === undefined ? undefined : new Date(at))))
    }
    if (req.method === 'GET' && path === '/_bench/calls') return send(200, JSON.stringify(Object.fromEntries(calls)))
    if (req.method === 'GET' && path === '/_bench/states') {
      const counts: Record<string, number> = {}
      for (const run of runs.values()) counts[run.json.state.type] = (counts[run.json.state.type] ?? 0) + 1
      return send(200, JSON.stringify(counts))
    }
    send(404, JSON.stringify({ detail: `stand-in does not serve ${req.method} ${path}` }))
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const answer = (): void => {
        try {
          handle(req, Buffer.concat(chunks).toString('utf8'), res)
        } catch (err) {
          res.writeHead(500).end(String(err))
        }
      }
      if (latencyMs > 0 && req.url?.startsWith('/api/') === true) setTimeout(answer, latencyMs)
      else answer()
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  const address = server.address() as AddressInfo
  return {
    apiUrl: `http://127.0.0.1:${address.port}/api`,
    createFlowRuns,
    setFlowRunState: (id, type, name) => {
      const run = runs.get(id)
      if (run === undefined) throw new Error(`no flow run ${id}`)
      const state = newState(type, name, id)
      run.json = { ...run.json, state, state_id: state.id, state_type: type, state_name: name }
      run.states.push(state)
    },
    close: () => new Promise(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const seed = JSON.parse(readFileSync(process.argv[2], 'utf8')) as StandInSeed
  const standIn = await startPrefectStandIn(seed, 0, Number(process.argv[3] ?? 0))
  process.stdout.write(`${JSON.stringify({ apiUrl: standIn.apiUrl })}\n`)
  const stop = (): void => { void standIn.close().then(() => process.exit(0)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  // The bench's pipe closing means the bench is gone.
  process.stdin.on('end', stop)
  process.stdin.resume()
}
