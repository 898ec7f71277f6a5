// The shape of bench/results.json. Field names of the issue (pickup_ms.pushpool.median, …) are
// kept exactly; everything else is detail beside them.
import type { Machine } from './machine.ts'
import type { Summary } from './stats.ts'
import type { ProfileSummary } from './profile.ts'
import type { MemoryResult } from './memory.ts'
import type { BurstResult } from './burst.ts'
import type { ApiCallsResult } from './api-calls.ts'
import type { ModuleCostResult } from './module-cost.ts'
import type { ScheduledRun } from './scheduled.ts'
import type { LateAndSchedulerSettings } from './peers.ts'

export type Sampled = Summary & { samples: number[] }

/** Scheduled runs' start delays (Pending − scheduled time), with how each left Scheduled and each run's record. */
export type ScheduledFigure = Sampled & { left_scheduled_via: Record<string, number>, runs: ScheduledRun[] }

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
    pushpool_split: {
      automation_to_webhook: Summary
      webhook_to_pending: Sampled
      /** webhook → Pending in parts, at the dispatch's events in pushpool's ledger (bench/pickup.ts PendingParts). */
      parts?: { webhook_to_received: Summary, received_to_claimed: Summary, claimed_to_pending: Summary }
    }
    warmup: { pushpool: number, worker: number } | null
    /** The 1-minute load average as each pair began. */
    load_1m: Summary
  }
  pickup_ratio?: number
  /** Figure 2: the steady state per timer mode and the worker, and apart, the first runs of a schedule. */
  scheduled_delay_ms?: {
    pushpool_reconcile_60s: ScheduledFigure
    pushpool_cloud_tasks_60s: ScheduledFigure
    worker: ScheduledFigure
    first_runs: {
      pushpool_reconcile_60s: ScheduledFigure
      pushpool_cloud_tasks_60s: ScheduledFigure
      worker: ScheduledFigure
      schedules: Array<{ rrule: string, created_before_first_due_ms: number }>
      schedule_added_s_before_first_due: number
      every_s: number
    }
    load_1m: number
    settings: Record<string, unknown> & { prefect: LateAndSchedulerSettings, PUSHPOOL_PREFETCH_SECONDS: number, pushpool_reconcile_every_s: number }
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
    store_on_tmpfs?: StoreVariantCost
    /** With the deployed store, PostgreSQL on loopback. */
    store_postgres?: StoreVariantCost
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
  /** The artifact as the image runs it; `variants`: without its code cache (NODE_DISABLE_COMPILE_CACHE=1), and `node src/server.ts`. */
  cold_start_ready_ms?: ColdStartFigure & { variants: Record<string, ColdStartFigure> }
  cold_start_first_dispatch_ms?: ColdStartFigure & { variants: Record<string, ColdStartFigure> }
  /** By variant name. */
  cold_start_rss_ready_mb?: Record<string, Summary>
  module_cost?: ModuleCostResult
  rss_idle_mb?: number
  rss_peak_mb?: number
  /** The highest RSS 10 s after a burst at the deployed concurrency. */
  rss_after_burst_mb?: number
  memory?: MemoryResult
  burst?: BurstResult & { quota_per_minute: number, runjob_latency_ms: number, reconcile_every_s: number, retry_delay_s: number, quota_bound_s: number }
  profiles?: Record<string, ProfileSummary & Record<string, unknown>>
  targets?: Array<{ figure: string, target: string, measured: string, load_1m: number | null, met: boolean | null }>
}

/** The cost figures with another store under pushpool. */
export interface StoreVariantCost { cpu_ms: Summary, latency_ms: Summary, throughput_per_s: Summary, cpu_ms_loaded: Summary }
