// Counts dispatch transitions where they are recorded, in the store, so no decision path has to
// remember to report itself: every state a dispatch enters is counted exactly once.
import type { Store } from '../store/store.ts'
import type { PushpoolMetrics } from './registry.ts'

export function instrumentStore (store: Store, metrics: PushpoolMetrics): Store {
  // Delegate through the prototype: every other method (and any state a class-based store keeps
  // on `this`) is the original's.
  const instrumented: Store = Object.create(store)
  instrumented.createDispatch = async input => {
    const result = await store.createDispatch(input)
    if (result.created) metrics.dispatches.inc({ pool: input.pool, state: input.state })
    return result
  }
  instrumented.transition = async (id, name, patch, event, options) => {
    const moved = await store.transition(id, name, patch, event, options)
    if (moved !== null) {
      metrics.dispatches.inc({ pool: moved.pool, state: moved.state })
      if (moved.state === 'launched' && moved.launchedAt !== null) {
        metrics.dispatchLatency.observe((Date.parse(moved.launchedAt) - Date.parse(moved.scheduledAt ?? moved.receivedAt)) / 1000, { pool: moved.pool })
      }
    }
    return moved
  }
  return instrumented
}
