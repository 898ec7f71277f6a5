// Drives POST /v1/reconcile on a timer, as Cloud Scheduler does in production, starting at a
// random phase. A call while a pass runs joins that pass (pushpool shares it).
import type { PushpoolProcess } from './pushpool-process.ts'

export interface ReconcileTimer {
  passes: number
  errors: number
  /** When each call was made (epoch ms), oldest first. */
  ticks: number[]
  stop (): void
}

export function startReconcileTimer (pushpool: PushpoolProcess, everySeconds: number,
  onError: (err: Error) => void = () => {}): ReconcileTimer {
  const state: ReconcileTimer = { passes: 0, errors: 0, ticks: [], stop: () => {} }
  let interval: NodeJS.Timeout | undefined
  const tick = (): void => {
    state.ticks.push(Date.now())
    pushpool.reconcile().then(() => { state.passes++ }, (err: Error) => { state.errors++; onError(err) })
  }
  const first = setTimeout(() => { tick(); interval = setInterval(tick, everySeconds * 1000) }, Math.random() * everySeconds * 1000)
  state.stop = () => { clearTimeout(first); clearInterval(interval) }
  return state
}
