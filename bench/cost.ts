// Figure 4, pushpool's own cost: CPU time per dispatch (webhook → Pending → RunJob → 202
// launched), read from /proc for the pushpool process alone, and throughput with many webhooks of
// distinct runs in flight. Run against the in-memory Prefect stand-in (so the figure is pushpool's),
// and against the real Prefect server for reference.
import type { PushpoolProcess } from './pushpool-process.ts'
import { sendWebhooks, type LoadResult } from './load.ts'

export interface CostOptions {
  pushpool: PushpoolProcess
  createFlowRuns: (count: number) => Promise<string[]>
  warmup: number
  repetitions: number
  /** Dispatches per sequential repetition (one webhook at a time). */
  sequential: number
  /** Dispatches per throughput repetition, and how many are in flight at once. */
  throughputRuns: number
  concurrency: number
  log: (line: string) => void
  label: string
}

export interface CostResult {
  /** CPU ms per dispatch, one webhook at a time: one value per repetition. */
  cpu_ms_sequential: number[]
  /** The same, split into user (JavaScript, V8) and system (kernel: syscalls) time. */
  cpu_ms_sequential_user: number[]
  cpu_ms_sequential_system: number[]
  /** Latency of a single dispatch (webhook to 202 launched), ms, medians per repetition. */
  latency_ms_sequential: number[]
  /** Dispatches per second with `concurrency` in flight: one value per repetition. */
  throughput_per_s: number[]
  /** CPU ms per dispatch under that load. */
  cpu_ms_loaded: number[]
  /** Share of one core pushpool used during the throughput runs. */
  cpu_utilisation: number[]
  failures: Record<string, number>
}

export async function measureCost (o: CostOptions): Promise<CostResult> {
  const result: CostResult = { cpu_ms_sequential: [], cpu_ms_sequential_user: [], cpu_ms_sequential_system: [], latency_ms_sequential: [], throughput_per_s: [], cpu_ms_loaded: [], cpu_utilisation: [], failures: {} }
  const tally = (load: LoadResult): void => {
    for (const [reply, n] of Object.entries(load.replies)) if (reply !== '202 launched') result.failures[reply] = (result.failures[reply] ?? 0) + n
  }
  // Warm-up: loads the Google clients, fills caches, lets V8 optimise.
  tally(await sendWebhooks(o.pushpool, await o.createFlowRuns(o.warmup), 1))
  for (let rep = 0; rep < o.repetitions; rep++) {
    const ids = await o.createFlowRuns(o.sequential)
    const latencies: number[] = []
    const split0 = o.pushpool.cpuSplitMs()
    const cpu0 = split0.user + split0.system
    for (const id of ids) {
      const t = performance.now()
      const { status, body } = await o.pushpool.webhook(id)
      latencies.push(performance.now() - t)
      if (status !== 202 || body?.state !== 'launched') result.failures[`${status} ${body?.state ?? ''}`] = (result.failures[`${status} ${body?.state ?? ''}`] ?? 0) + 1
    }
    const split1 = o.pushpool.cpuSplitMs()
    const cpu = (split1.user + split1.system - cpu0) / ids.length
    result.cpu_ms_sequential_user.push((split1.user - split0.user) / ids.length)
    result.cpu_ms_sequential_system.push((split1.system - split0.system) / ids.length)
    latencies.sort((a, b) => a - b)
    result.cpu_ms_sequential.push(cpu)
    result.latency_ms_sequential.push(latencies[Math.floor(latencies.length / 2)])

    const burst = await o.createFlowRuns(o.throughputRuns)
    const c0 = o.pushpool.cpuMs()
    const load = await sendWebhooks(o.pushpool, burst, o.concurrency)
    const used = o.pushpool.cpuMs() - c0
    tally(load)
    result.throughput_per_s.push(load.launched / (load.wallMs / 1000))
    result.cpu_ms_loaded.push(used / burst.length)
    result.cpu_utilisation.push(used / load.wallMs)
    o.log(`  ${o.label} ${rep + 1}/${o.repetitions}: ${cpu.toFixed(2)} CPU ms/dispatch sequential (user ${((split1.user - split0.user) / ids.length).toFixed(2)}, system ${((split1.system - split0.system) / ids.length).toFixed(2)}; median latency ${latencies[Math.floor(latencies.length / 2)].toFixed(1)} ms); ` +
      `${(load.launched / (load.wallMs / 1000)).toFixed(0)} dispatches/s at ${o.concurrency} in flight (${(used / burst.length).toFixed(2)} CPU ms each, ${(used / load.wallMs * 100).toFixed(0)}% of a core)`)
  }
  return result
}
