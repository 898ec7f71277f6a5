// The shape of bench/results.json. Field names of the issue (pickup_ms.pushpool.median, …) are
// kept exactly; everything else is detail beside them.
import type { Machine } from './machine.ts'
import type { Summary } from './stats.ts'
import type { ProfileSummary } from './profile.ts'
import type { MemoryResult } from './memory.ts'
import type { BurstResult } from './burst.ts'
import type { ApiCallsResult } from './api-calls.ts'
import type { ModuleCostResult } from './module-cost.ts'

export type Sampled = Summary & { samples: number[] }

/** A cold-start figure (wall ms) with the process's CPU time and the machine's 1-minute load at each start. */
export type ColdStartFigure = Sampled & { cpu_ms: Summary, load_1m: Sampled, entry: string, env: Record<string, string> }

export interface ApiFigure extends Summary { by_method: Record<string, number> }

export interface Results {
  meta: {
    mode: 'quick' | 'full'
    phases: string[]
    machine: Machine | null
    entry: string
    notes: string[]
    prefect_server_env?: Record<string, string>
    finished?: string
    duration_s?: number
  }
  /** Load average (1, 5, 15 min) when each phase began: the machine is shared. */
  load_average: Record<string, number[]>
  pickup_ms?: {
    pushpool: Sampled
    worker: Sampled
    /** pushpool's latency split at the webhook's arrival (pushpool's log). */
    pushpool_split: { automation_to_webhook: Summary, webhook_to_pending: Summary }
    warmup: { pushpool: number, worker: number } | null
  }
  pickup_ratio?: number
  scheduled_delay_ms?: {
    pushpool: Sampled
    worker: Sampled
    pushpool_reconcile_60s: Sampled
    left_scheduled_via: Record<string, Record<string, number>>
    settings: Record<string, unknown>
  }
  api_calls_per_run?: {
    reuse: number
    per_run: number
    worker: number
    detail: { reuse: ApiFigure, per_run: ApiFigure, worker: ApiFigure, reuse_first_run_on_instance: ApiFigure }
    run_seconds: number
    reconcile_every_s: number
    worker_is: string
  }
  api_calls_raw?: ApiCallsResult
  dispatch_cpu_ms?: Sampled & {
    user: Summary
    system: Summary
    under_load: Summary
    latency_ms: Summary
    prefect_calls_per_dispatch: Record<string, number>
    store_on_tmpfs?: { cpu_ms: Summary, latency_ms: Summary, throughput_per_s: Summary, cpu_ms_loaded: Summary }
  }
  throughput_per_s?: number
  throughput?: {
    stand_in: Sampled & { concurrency: number, runs_per_repetition: number, pushpool_cpu_share_of_one_core: Summary }
    failures: Record<string, number>
  }
  real_prefect?: {
    dispatch_cpu_ms: Sampled
    dispatch_latency_ms: Summary
    throughput_per_s: Sampled & { concurrency: number, runs_per_repetition: number }
    failures: Record<string, number>
  }
  /** The artifact as the image runs it; `variants`: without its compile cache, and `node src/server.ts`. */
  cold_start_ready_ms?: ColdStartFigure & { variants: Record<string, ColdStartFigure> }
  cold_start_first_dispatch_ms?: ColdStartFigure & { variants: Record<string, ColdStartFigure> }
  /** By variant name. */
  cold_start_rss_ready_mb?: Record<string, Summary>
  module_cost?: ModuleCostResult
  rss_idle_mb?: number
  rss_peak_mb?: number
  memory?: MemoryResult
  burst?: BurstResult & { quota_per_minute: number, runjob_latency_ms: number, reconcile_every_s: number, retry_delay_s: number, quota_bound_s: number }
  profiles?: Record<string, ProfileSummary & Record<string, unknown>>
  targets?: Array<{ figure: string, target: string, measured: string, met: boolean | null }>
}
