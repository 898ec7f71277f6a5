// Work pool and work queue concurrency limits for pushed runs. Prefect enforces them only in the
// query polling workers use, so a push dispatcher must enforce them itself: count the pool's (and
// the queue's) active runs and claim only below the limit. The count and the claim (which ends with
// Pending accepted, so the next count sees the run) happen under a per-pool lock that the store
// holds for every instance on the same database, so no two claims anywhere can take the last slot.
import type { PrefectClient } from '../prefect/client.ts'
import type { FlowRun, StateType } from '../prefect/types.ts'
import type { Store } from '../store/store.ts'
import type { PrefectSnapshots } from './prefect-snapshots.ts'

const ACTIVE: StateType[] = ['PENDING', 'RUNNING', 'CANCELLING']

export type Admission<T> = { admitted: true, value: T } | { admitted: false, reason: string }

export class ConcurrencyGate {
  private readonly prefect: PrefectClient
  private readonly snapshots: PrefectSnapshots
  private readonly store: Store

  constructor (prefect: PrefectClient, snapshots: PrefectSnapshots, store: Store) {
    this.prefect = prefect
    this.snapshots = snapshots
    this.store = store
  }

  /**
   * Runs `claim` if the run's pool and queue have a free slot; otherwise says why not. A run that
   * `holdsSlot` is Pending by an earlier claim of its own (Prefect applied it, the reply was lost):
   * it is among the active runs counted, and must not be held back by its own slot.
   */
  async admit<T>(flowRun: FlowRun, claim: () => Promise<T>, holdsSlot = false): Promise<Admission<T>> {
    const poolName = flowRun.work_pool_name ?? ''
    const [pool, queue] = await Promise.all([
      this.snapshots.workPool(poolName),
      flowRun.work_queue_id === null ? null : this.snapshots.workQueue(flowRun.work_queue_id)
    ])
    if (pool?.is_paused === true) return { admitted: false, reason: `work pool ${poolName} is paused` }
    if (queue?.is_paused === true) return { admitted: false, reason: `work queue ${queue.name} is paused` }
    const poolLimit = pool?.concurrency_limit ?? null
    const queueLimit = queue?.concurrency_limit ?? null
    if (poolLimit === null && queueLimit === null) return { admitted: true, value: await claim() }
    const own = holdsSlot ? 1 : 0
    return await this.store.exclusively(`limit:${poolName}`, async () => {
      if (poolLimit !== null) {
        const active = await this.prefect.countFlowRuns({ pool: poolName, stateTypes: ACTIVE }) - own
        if (active >= poolLimit) return { admitted: false, reason: `work pool ${poolName} is at its concurrency limit (${active}/${poolLimit})` }
      }
      if (queueLimit !== null && queue !== null) {
        const active = await this.prefect.countFlowRuns({ pool: poolName, queueId: queue.id, stateTypes: ACTIVE }) - own
        if (active >= queueLimit) return { admitted: false, reason: `work queue ${queue.name} is at its concurrency limit (${active}/${queueLimit})` }
      }
      return { admitted: true, value: await claim() }
    })
  }
}
