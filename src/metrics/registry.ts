// A minimal Prometheus registry: counters and histograms with labels, rendered in the text
// exposition format. Small enough to own, so no metrics library joins the cold-start path.

type Labels = Record<string, string>

const escapeLabel = (value: string): string => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
const labelText = (labels: Labels): string => {
  const entries = Object.entries(labels)
  return entries.length === 0 ? '' : `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`
}
const keyOf = (labels: Labels): string => JSON.stringify(Object.entries(labels).sort())

interface Metric {
  render (): string
}

export class Counter implements Metric {
  private readonly values = new Map<string, { labels: Labels, value: number }>()
  readonly name: string
  readonly help: string

  constructor (name: string, help: string) {
    this.name = name
    this.help = help
  }

  inc (labels: Labels = {}, by = 1): void {
    const key = keyOf(labels)
    const entry = this.values.get(key)
    if (entry === undefined) this.values.set(key, { labels, value: by })
    else entry.value += by
  }

  render (): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`]
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`)
    return lines.join('\n')
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { labels: Labels, counts: number[], sum: number, count: number }>()
  readonly name: string
  readonly help: string
  readonly buckets: readonly number[]

  constructor (name: string, help: string, buckets: readonly number[]) {
    this.name = name
    this.help = help
    this.buckets = buckets
  }

  observe (value: number, labels: Labels = {}): void {
    const key = keyOf(labels)
    let entry = this.series.get(key)
    if (entry === undefined) {
      entry = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }
      this.series.set(key, entry)
    }
    for (const [i, bound] of this.buckets.entries()) if (value <= bound) entry.counts[i]++
    entry.sum += value
    entry.count++
  }

  render (): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`]
    for (const { labels, counts, sum, count } of this.series.values()) {
      for (const [i, bound] of this.buckets.entries()) {
        lines.push(`${this.name}_bucket${labelText({ ...labels, le: String(bound) })} ${counts[i]}`)
      }
      lines.push(`${this.name}_bucket${labelText({ ...labels, le: '+Inf' })} ${count}`)
      lines.push(`${this.name}_sum${labelText(labels)} ${sum}`)
      lines.push(`${this.name}_count${labelText(labels)} ${count}`)
    }
    return lines.join('\n')
  }
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** Every metric pushpool exports. */
export class PushpoolMetrics {
  readonly dispatches = new Counter('pushpool_dispatches_total', 'Dispatches entering each state, by pool')
  readonly dispatchLatency = new Histogram('pushpool_dispatch_latency_seconds',
    'From webhook received to RunJob accepted', SECONDS)
  readonly cloudRunCalls = new Counter('pushpool_cloud_run_calls_total', 'Cloud Run Admin API calls by method and gRPC status')
  readonly prefectCalls = new Counter('pushpool_prefect_calls_total', 'Prefect API calls by route and HTTP status')
  readonly prefectLatency = new Histogram('pushpool_prefect_call_duration_seconds', 'Prefect API call duration by route', SECONDS)
  readonly reconcileDuration = new Histogram('pushpool_reconcile_duration_seconds', 'Duration of reconcile passes', SECONDS)
  readonly reapedExecutions = new Counter('pushpool_reaped_executions_total',
    'Executions cancelled because their flow run had ended without completing, by pool')
  readonly prefectActivity = new Counter('pushpool_prefect_activity_total',
    'Flow-run log lines and events for Prefect, by kind (logs, events) and outcome (sent; dropped: the queue was full; failed: Prefect refused the batch)')

  render (): string {
    return [this.dispatches, this.dispatchLatency, this.cloudRunCalls, this.prefectCalls, this.prefectLatency, this.reconcileDuration,
      this.reapedExecutions, this.prefectActivity]
      .map(m => m.render()).join('\n') + '\n'
  }
}
