// Figure 7, a burst under a quota: RUNS flow runs created at once, each announced to pushpool by
// its webhook, all at once. The emulator adds 100 ms to every RunJob and answers
// RESOURCE_EXHAUSTED above PER_MINUTE RunJob calls a minute (a sliding window). Reconcile runs on
// a timer, with PUSHPOOL_RETRY_DELAY_SECONDS small, and drives what the webhooks' own attempts
// could not launch. Drain = from the runs' creation until every run has an execution; then the
// bench watches a while longer for duplicates. Lost = runs still without an execution when the
// time limit ends the wait.
//
// The runs live in the in-memory Prefect stand-in: a real SQLite-backed Prefect server on this
// machine creates well under one run a second while pushpool reads and writes it (measured while
// building this bench: 100 runs took 120 s to create), so "1,000 at once" cannot be had from it
// and the quota would never bind.
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Emulator } from '../src/emulator/index.ts'
import type { PushpoolProcess } from './pushpool-process.ts'
import { sendWebhooks } from './load.ts'
import { startReconcileTimer } from './reconcile-timer.ts'

export interface BurstOptions {
  emulator: Emulator
  pushpool: PushpoolProcess
  /** Creates the runs, Scheduled now, and returns their ids. */
  createFlowRuns: (count: number) => Promise<string[]>
  /** Send each run's webhook from the bench (false when a real Prefect automation does). */
  announce: boolean
  runs: number
  perMinute: number
  runJobLatencyMs: number
  reconcileSeconds: number
  /** How long to keep watching after the last run got its execution. */
  settleSeconds: number
  limitSeconds: number
  log: (line: string) => void
}

export interface BurstResult {
  runs: number
  drain_s: number | null
  duplicates: number
  lost: number
  created_s: number
  /** How pushpool answered the webhooks the bench sent. */
  webhook_replies: Record<string, number>
  runjob_calls: number
  runjob_rejected: number
  calls: Record<string, number>
  webhooks_received: number
  reconcile_passes: number
  /** Reconcile calls that failed at the HTTP level (e.g. the request cut by the server's timeout). */
  reconcile_call_errors: number
  dispatch_states: Record<string, number>
  timeline: Array<{ t_s: number, with_execution: number, runjob_calls: number }>
  peak_rss_mb: number
  /** CPU seconds during the burst: pushpool's process, and the bench's (emulator, stand-in, load). */
  cpu_s: { pushpool: number, bench_process: number, wall: number }
  /** Reconcile passes as pushpool logged them. */
  reconcile: Array<{ duration_ms: number, checked: number, driven: number, discovered: number, truncated: boolean }>
  /** Launch attempts that failed, and dispatches handed to reconcile, per pushpool's log. */
  attempts_failed: number
  handed_to_reconcile: number
}

const flowRunOf = (env: Array<{ name: string, value?: string }> | undefined): string | undefined =>
  env?.find(v => v.name === 'PREFECT__FLOW_RUN_ID')?.value

export async function measureBurst (o: BurstOptions): Promise<BurstResult> {
  o.emulator.addFault({ method: 'RunJob', latencyMs: o.runJobLatencyMs })
  o.emulator.setRateLimit('RunJob', o.perMinute)
  o.emulator.resetCalls()
  const timer = startReconcileTimer(o.pushpool, o.reconcileSeconds, err => { o.log(`  reconcile failed: ${err.message}`) })
  let webhookReplies: Record<string, number> = {}
  const pushpoolCpu0 = o.pushpool.cpuMs()
  const benchCpu0 = process.cpuUsage()
  const started = performance.now()
  const since = (): number => (performance.now() - started) / 1000
  const ids: string[] = []
  // All runs at once; each announced by its webhook at once, as the automation would call it
  // (or, with a real Prefect server, by the automation itself).
  const creating = (async () => {
    const created = await o.createFlowRuns(o.runs)
    ids.push(...created)
    const createdAt = since()
    if (o.announce) {
      o.pushpool.client.dropIdleSockets()
      const load = await sendWebhooks(o.pushpool, created, created.length)
      webhookReplies = load.replies
    }
    return createdAt
  })()

  const timeline: BurstResult['timeline'] = []
  const count = (): Map<string, number> => {
    const perRun = new Map<string, number>()
    for (const e of o.emulator.executions()) {
      const id = flowRunOf(e.template?.containers?.[0]?.env)
      if (id !== undefined) perRun.set(id, (perRun.get(id) ?? 0) + 1)
    }
    return perRun
  }
  let drained: number | null = null
  let lastLog = 0
  for (;;) {
    await sleep(1000)
    const perRun = count()
    const withExecution = ids.filter(id => perRun.has(id)).length
    if (since() - lastLog >= 10) {
      lastLog = since()
      timeline.push({ t_s: Math.round(since()), with_execution: withExecution, runjob_calls: o.emulator.calls().RunJob ?? 0 })
      o.log(`  t=${since().toFixed(0)} s: ${ids.length} created, ${withExecution} with an execution, ${o.emulator.calls().RunJob ?? 0} RunJob calls`)
    }
    if (drained === null && ids.length === o.runs && withExecution === o.runs) drained = since()
    if (drained !== null && since() - drained >= o.settleSeconds) break
    if (since() > o.limitSeconds) { o.log(`  time limit of ${o.limitSeconds} s reached`); break }
  }
  timer.stop()
  const benchCpu = process.cpuUsage(benchCpu0)
  const cpu = { pushpool: (o.pushpool.cpuMs() - pushpoolCpu0) / 1000, bench_process: (benchCpu.user + benchCpu.system) / 1e6, wall: since() }
  const createdS = await creating
  const perRun = count()
  const calls = o.emulator.calls()
  let duplicates = 0
  for (const id of ids) duplicates += Math.max(0, (perRun.get(id) ?? 0) - 1)
  const lost = o.runs - ids.filter(id => perRun.has(id)).length
  const executions = o.emulator.executions().length
  const pools = JSON.parse((await o.pushpool.client.send('GET', '/v1/pools', { authorization: `Bearer ${(await import('./pushpool-process.ts')).ADMIN_TOKEN}` })).body)
  const logLines = readFileSync(o.pushpool.logFile, 'utf8').split('\n')
  const webhooks = logLines.filter(l => l.includes('"url":"/v1/webhooks/prefect"') && l.includes('incoming request')).length
  const reconcile: BurstResult['reconcile'] = []
  for (const line of logLines.filter(l => l.includes('"reconcile pass done"'))) {
    try {
      const r = JSON.parse(line).reconcile
      reconcile.push({ duration_ms: r.duration_ms, checked: r.checked, driven: r.driven, discovered: r.discovered, truncated: r.truncated })
    } catch { /* not JSON */ }
  }
  o.emulator.clearFaults()
  o.emulator.setRateLimit('RunJob', null)
  return {
    runs: o.runs,
    drain_s: drained,
    duplicates,
    lost,
    created_s: createdS,
    webhook_replies: webhookReplies,
    runjob_calls: calls.RunJob ?? 0,
    runjob_rejected: (calls.RunJob ?? 0) - executions,
    calls,
    webhooks_received: webhooks,
    reconcile_passes: timer.passes,
    reconcile_call_errors: timer.errors,
    dispatch_states: pools.pools?.[0]?.counts ?? {},
    timeline,
    peak_rss_mb: o.pushpool.peakRssMb(),
    cpu_s: cpu,
    reconcile,
    attempts_failed: logLines.filter(l => l.includes('"launch attempt failed"')).length,
    handed_to_reconcile: logLines.filter(l => l.includes('"dispatch will be retried by reconcile"')).length
  }
}
