// Prefect objects a dispatch may take from a recent copy rather than read again each time. A
// polling worker works the same way: it refreshes its work pool only on each heartbeat (30 s by
// default, `sync_with_backend` in prefect/workers/base.py) and renders every run from that copy.
// Deployments are not here: the worker reads them afresh for each run, and so does pushpool.
import type { PrefectClient } from '../prefect/client.ts'
import type { Flow, WorkPool, WorkQueue } from '../prefect/types.ts'
import { TtlCache } from '../util/ttl-cache.ts'

/** A pool or queue edit (template, limit, pause) reaches new dispatches within this time. */
const POOL_MS = 5000
/** A flow is read only for its name, which never changes; the TTL only bounds the memory. */
const FLOW_MS = 5 * 60_000

export class PrefectSnapshots {
  private readonly prefect: PrefectClient
  private readonly pools = new TtlCache<WorkPool | null>(POOL_MS)
  private readonly queues = new TtlCache<WorkQueue | null>(POOL_MS)
  private readonly flows = new TtlCache<Flow | null>(FLOW_MS)

  constructor (prefect: PrefectClient) {
    this.prefect = prefect
  }

  workPool (name: string): Promise<WorkPool | null> {
    return this.pools.get(name, () => this.prefect.readWorkPool(name))
  }

  workQueue (id: string): Promise<WorkQueue | null> {
    return this.queues.get(id, () => this.prefect.readWorkQueue(id))
  }

  flow (id: string): Promise<Flow | null> {
    return this.flows.get(id, () => this.prefect.readFlow(id))
  }
}
