// Work pool and work queue concurrency limits for pushed runs. Prefect enforces them only in the
// query polling workers use, so a push dispatcher must enforce them itself: count the pool's (and
// the queue's) active runs and claim only below the limit. The count and the claim happen under a
// per-pool lock, so concurrent webhooks in one process cannot both take the last slot.
import type { PrefectClient } from '../prefect/client.ts'
import type { FlowRun, StateType } from '../prefect/types.ts'
import type { PrefectSnapshots } from './prefect-snapshots.ts'

const ACTIVE: StateType[] = ['PENDING', 'RUNNING', 'CANCELLING']

export type Admission<T> = { admitted: true, value: T } | { admitted: false, reason: string }

export class ConcurrencyGate {
  private readonly prefect: PrefectClient
  private readonly snapshots: PrefectSnapshots
  private readonly locks = new Map<string, Promise<unknown>>()

  constructor (prefect: PrefectClient, snapshots: PrefectSnapshots) {
    this.prefect = prefect
    this.snapshots = snapshots
  }

  /** Runs `claim` if the run's pool and queue have a free slot; otherwise says why not. */
  async admit<T>(flowRun: FlowRun, claim: () => Promise<T>): Promise<Admission<T>> {
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
    return await this.serialised(poolName, async () => {
      if (poolLimit !== null) {
        const active = await this.prefect.countFlowRuns({ pool: poolName, stateTypes: ACTIVE })
        if (active >= poolLimit) return { admitted: false, reason: `work pool ${poolName} is at its concurrency limit (${active}/${poolLimit})` }
      }
      if (queueLimit !== null && queue !== null) {
        const active = await this.prefect.countFlowRuns({ pool: poolName, queueId: queue.id, stateTypes: ACTIVE })
        if (active >= queueLimit) return { admitted: false, reason: `work queue ${queue.name} is at its concurrency limit (${active}/${queueLimit})` }
      }
      return { admitted: true, value: await claim() }
    })
  }

  private async serialised<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve()
    const current = previous.then(fn, fn)
    const tail = current.catch(() => undefined)
    this.locks.set(key, tail)
    try {
      return await current
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key)
    }
  }
}
