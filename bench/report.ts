// Writes results.json and RESULTS.md from one run's results: the machine and versions, every figure
// as median (min–max, n), the targets of the issue with met/missed, and the profiles' evidence.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ColdStartFigure, Results, ScheduledFigure, StoreVariantCost } from './results.ts'
import { summarize, type Summary } from './stats.ts'
import { isoSeconds } from './peers.ts'
import type { Frame, ProfileSummary } from './profile.ts'

const f = (s: Summary | undefined, unit = '', digits = 0): string =>
  s === undefined || s.n === 0 ? 'n/a' : `${s.median.toFixed(digits)}${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)}, n=${s.n})`
const num = (v: number | undefined | null, digits = 0, unit = ''): string => v === undefined || v === null || Number.isNaN(v) ? 'n/a' : `${v.toFixed(digits)}${unit}`

/**
 * The targets of issues 15 and 17, each with the 1-minute load average the figure was taken at
 * (the median over its samples where each sample kept its own, else the load when its phase began).
 */
function targets (r: Results): NonNullable<Results['targets']> {
  const rows: NonNullable<Results['targets']> = []
  const phaseLoad = (phase: string): number | undefined => r.load_average[phase]?.[0]
  const add = (figure: string, target: string, value: number | undefined, measured: string, load: number | undefined, ok: (v: number) => boolean): void => {
    rows.push({
      figure,
      target,
      measured: value === undefined ? 'not measured' : measured,
      load_1m: load ?? null,
      met: value === undefined || Number.isNaN(value) ? null : ok(value)
    })
  }
  const s = r.scheduled_delay_ms
  const prefetch = s?.settings.PUSHPOOL_PREFETCH_SECONDS ?? 10
  for (const key of ['pushpool_reconcile_60s', 'pushpool_cloud_tasks_60s'] as const) {
    const fig = s?.[key]
    add(`scheduled_delay_ms.${key}`, `median in [−${prefetch * 1000}, +2000] ms, max ≤ +5000 ms, n ≥ 8`, fig?.median,
      `median ${num(fig?.median)} ms, max ${num(fig?.max)} ms, n=${fig?.n ?? 0} (Late after ${s === undefined ? '?' : isoSeconds(s.settings.prefect.late_runs.after_seconds)} s)`,
      s?.load_1m, () => fig !== undefined && fig.median >= -prefetch * 1000 && fig.median <= 2000 && fig.max <= 5000 && fig.n >= 8)
  }
  const ready = r.cold_start_ready_ms
  const first = r.cold_start_first_dispatch_ms
  add('cold_start_ready_ms.median', '≤ 150 ms', ready?.median, `${num(ready?.median)} ms (${ready?.entry ?? ''})`, ready?.load_1m.median, v => v <= 150)
  add('cold_start_first_dispatch_ms.median', '≤ 300 ms', first?.median, `${num(first?.median)} ms`, first?.load_1m.median, v => v <= 300)
  add('dispatch_cpu_ms.median', '≤ 2 ms', r.dispatch_cpu_ms?.median, `${num(r.dispatch_cpu_ms?.median, 2)} ms`, phaseLoad('cost'), v => v <= 2)
  add('throughput_per_s', '≥ 800 /s', r.throughput_per_s, `${num(r.throughput_per_s)} /s at ${r.throughput?.stand_in.concurrency ?? '?'} in flight`, phaseLoad('cost'), v => v >= 800)
  add('rss_idle_mb', '≤ 80 MB', r.rss_idle_mb, `${num(r.rss_idle_mb, 1)} MB`, r.memory?.load_1m, v => v <= 80)
  add('rss_after_burst_mb', '≤ 200 MB', r.rss_after_burst_mb,
    `${num(r.rss_after_burst_mb, 1)} MB, ${(r.memory?.settle_ms ?? 0) / 1000} s after bursts of ${r.memory?.bursts[0]?.runs ?? '?'} at ${r.memory?.concurrency ?? '?'} at once (the highest of ${r.memory?.bursts.length ?? 0})`,
    r.memory === undefined ? undefined : summarize(r.memory.bursts.map(b => b.load_1m)).median, v => v <= 200)
  const split = r.pickup_ms?.pushpool_split.webhook_to_pending
  add('pickup_ms.pushpool_split.webhook_to_pending.median', '≤ 10 ms', split?.median, `${num(split?.median, 1)} ms (n=${split?.n ?? 0})`, r.pickup_ms?.load_1m.median, v => v <= 10)
  add('pickup_ratio', '≥ 10 with pickup_ms.pushpool.n ≥ 30', r.pickup_ratio,
    `${num(r.pickup_ratio, 1)} (worker ${num(r.pickup_ms?.worker.median)} ms / pushpool ${num(r.pickup_ms?.pushpool.median)} ms, n=${r.pickup_ms?.pushpool.n ?? 0})`,
    r.pickup_ms?.load_1m.median, v => v >= 10 && (r.pickup_ms?.pushpool.n ?? 0) >= 30)
  add('burst.drain_s', `≤ 190 s (${r.burst?.runs ?? '?'} runs, ${r.burst?.quota_per_minute ?? '?'} RunJob/min)`, r.burst?.drain_s ?? undefined, `${num(r.burst?.drain_s, 1)} s`, phaseLoad('burst'), v => v <= 190)
  add('burst.duplicates', '0', r.burst?.duplicates, `${r.burst?.duplicates ?? 'n/a'}`, phaseLoad('burst'), v => v === 0)
  add('burst.lost', '0', r.burst?.lost, `${r.burst?.lost ?? 'n/a'}`, phaseLoad('burst'), v => v === 0)
  add('api_calls_per_run.reuse', '≤ 2', r.api_calls_per_run?.reuse, `${num(r.api_calls_per_run?.reuse)} (${Object.entries(r.api_calls_per_run?.detail.reuse.by_method ?? {}).map(([m, n]) => `${m} ${n}`).join(', ')})`, phaseLoad('scheduled') ?? phaseLoad('api'), v => v <= 2)
  return rows
}

function frames (rows: Frame[] | undefined, limit = 12): string {
  if (rows === undefined || rows.length === 0) return '_none_\n'
  return ['| ms | share | frame |', '|---:|---:|---|', ...rows.slice(0, limit).map(r => `| ${r.ms.toFixed(0)} | ${r.pct.toFixed(1)}% | \`${r.frame.replace(/\|/g, '\\|')}\` |`)].join('\n') + '\n'
}

function profileSection (title: string, p: (ProfileSummary & Record<string, unknown>) | undefined, what: string): string {
  if (p === undefined) return ''
  return `### ${title}\n\n${what} ${p.total_ms} ms of samples.\n\nBy activity (self time of the leaf frame):\n\n${frames(p.by_activity, 16)}\n` +
    `Top functions by self time:\n\n${frames(p.top_self)}\nTop pushpool functions by inclusive time:\n\n${frames(p.top_inclusive_src)}\n`
}

export function writeReport (r: Results, outDir: string): { json: string, markdown: string } {
  if (r.memory !== undefined) {
    r.rss_idle_mb = Math.round(r.memory.rss_idle_warm_mb * 10) / 10
    r.rss_peak_mb = Math.round(Math.max(...r.memory.bursts.map(b => b.peak_rss_mb)) * 10) / 10
    r.rss_after_burst_mb = Math.round(Math.max(...r.memory.bursts.map(b => b.rss_after_mb)) * 10) / 10
  }
  r.targets = targets(r)
  const json = join(outDir, r.meta.mode === 'quick' ? 'results.quick.json' : 'results.json')
  const markdown = join(outDir, r.meta.mode === 'quick' ? 'RESULTS.quick.md' : 'RESULTS.md')
  mkdirSync(outDir, { recursive: true })
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`)

  const m = r.meta.machine
  const out: string[] = []
  out.push('# pushpool benchmarks\n')
  out.push(`Generated by \`npm run bench\`${r.meta.mode === 'quick' ? ' --quick (a smoke run: small counts)' : ''} on ${r.meta.finished ?? m?.date ?? ''} in ${r.meta.duration_s ?? '?'} s; the figures are in \`${r.meta.mode === 'quick' ? 'results.quick.json' : 'results.json'}\`. ` +
    'Every figure is the median (min–max, n repetitions), all measured in this one run, side by side.\n')
  if (m !== null) {
    out.push('| | |\n|---|---|')
    out.push(`| machine | ${m.cpu}, ${m.cores} cores, ${m.memory_gb} GB, Linux ${m.kernel} |`)
    out.push(`| load average at start (1/5/15 min) | ${m.load_average_at_start.join(' / ')} — shared machine: other engineers' test suites and Prefect servers ran meanwhile |`)
    out.push(`| Node | ${m.node} |`)
    out.push(`| pushpool | commit ${m.commit}${m.dirty_files > 0 ? ` plus ${m.dirty_files} uncommitted files in the shared work tree` : ''}; ${r.meta.entry} |`)
    out.push(`| npm packages | ${Object.entries(m.packages).map(([k, v]) => `${k} ${v}`).join(', ')} |`)
    out.push(`| Python packages (repo venv) | ${Object.entries(m.python_packages).map(([k, v]) => `${k} ${v}`).join(', ')} |`)
    const tuned = Object.entries(r.meta.prefect_server_env ?? {}).map(([k, v]) => `${k}=${v}`)
    out.push(`| Prefect server settings | ${tuned.length === 0 ? "Prefect's defaults (SQLite), the Late and scheduler services' as read back in figure 2" : `${tuned.join(', ')}; otherwise defaults (SQLite)`} |`)
    out.push(`| load average when each phase began | ${Object.entries(r.load_average).map(([k, v]) => `${k} ${v[0]}`).join(', ')} |`)
    out.push('')
  }
  for (const note of r.meta.notes) out.push(`> ${note}\n`)

  out.push('## Targets\n')
  out.push('Issue 15 (figure 2) and issue 17. Load = the 1-minute load average when the figure was taken (2 cores).\n')
  out.push('| figure | target | measured | load | |\n|---|---|---|---|---|')
  for (const t of r.targets) out.push(`| \`${t.figure}\` | ${t.target} | ${t.measured} | ${num(t.load_1m ?? undefined, 2)} | ${t.met === null ? '—' : t.met ? 'met' : '**missed**'} |`)
  out.push('')

  if (r.pickup_ms !== undefined) {
    const p = r.pickup_ms
    out.push('## 1. Pickup latency\n')
    out.push('Flow runs created due-now (`POST /deployments/{id}/create_flow_run`) at the same moment in two pools of one Prefect server, after a random ' +
      "wait of 0–10 s so each lands at a random point of the worker's poll cycle. Latency = Pending state timestamp − Scheduled state timestamp, both from " +
      "the run's state history. pushpool is reached through the Webhook block and automation that `pushpool setup` creates; the worker is " +
      '`prefect worker start --type process` with default settings (it then runs the flow; the next pair waits until it has finished). A first pair was a warm-up, not counted.\n')
    out.push('| | pickup |\n|---|---|')
    out.push(`| pushpool | ${f(p.pushpool, ' ms')} |`)
    out.push(`| Prefect worker (process) | ${f(p.worker, ' ms')} |`)
    out.push(`| **pickup_ratio** (worker / pushpool medians) | **${num(r.pickup_ratio, 1)}** |`)
    out.push(`| pushpool: Scheduled → webhook received (Prefect's automation) | ${f(p.pushpool_split.automation_to_webhook, ' ms')} |`)
    out.push(`| pushpool: webhook received → Pending (pushpool) | ${f(p.pushpool_split.webhook_to_pending, ' ms')} |`)
    const parts = p.pushpool_split.parts
    if (parts !== undefined) {
      out.push(`| … webhook received → dispatch recorded (reading the run from Prefect) | ${f(parts.webhook_to_received, ' ms')} |`)
      out.push(`| … recorded → claimed (the pool's and queue's snapshots, read from Prefect when older than 5 s) | ${f(parts.received_to_claimed, ' ms')} |`)
      out.push(`| … claimed → Pending stamped (Prefect applying the proposal) | ${f(parts.claimed_to_pending, ' ms')} |`)
    }
    if (p.warmup !== null) out.push(`| warm-up pair (not counted) | pushpool ${num(p.warmup.pushpool)} ms, worker ${num(p.warmup.worker)} ms |`)
    out.push('')
  }

  if (r.scheduled_delay_ms !== undefined) {
    const s = r.scheduled_delay_ms
    const set = s.settings
    const late = set.prefect
    out.push('## 2. Scheduled-run start delay\n')
    const rrule = (set.schedule as { rrule?: string } | undefined)?.rrule?.split('\n').find(line => line.startsWith('RRULE:'))
    out.push("Runs that Prefect's scheduler service creates from a deployment schedule: each pool's deployment gets the same schedule" +
      (rrule !== undefined ? ` (\`${rrule}\` from one shared DTSTART, UTC)` : '') + ', so every pool has runs due at the same times. ' +
      'The schedule is added by updating the deployment (as `prefect deploy` does), so the scheduler makes its runs within seconds. ' +
      'The scheduler inserts its runs without a Scheduled event, so no automation calls pushpool: reconcile finds them, every ' +
      `${set.pushpool_reconcile_every_s} s (Cloud Scheduler's minimum) from a random phase, and its look-ahead arms a timer per run that fires ` +
      `\`PUSHPOOL_PREFETCH_SECONDS\`=${set.PUSHPOOL_PREFETCH_SECONDS} s before it is due, in both timer modes: in the process (the default), ` +
      "and on Cloud Tasks (the emulator's, delivering to `POST /v1/timers/fire` with an OIDC token). " +
      "Delay = Pending state timestamp − the run's scheduled time; **negative = handed over early**: the worker " +
      '(`PREFECT_WORKER_PREFETCH_SECONDS`=10) also takes runs up to 10 s before they are due.\n')
    out.push(`Prefect server settings, read back from \`GET /admin/settings\`: **Late after ${isoSeconds(late.late_runs.after_seconds)} s, late-runs loop ${late.late_runs.loop_seconds} s, ` +
      `scheduler loop ${late.scheduler.loop_seconds} s, recent-deployments loop ${late.scheduler.recent_deployments_loop_seconds} s** ` +
      `(${late.defaults ? "Prefect's defaults" : "**not** Prefect's defaults"}). 1-minute load average when the phase began: ${num(s.load_1m, 2)}.\n`)
    const target = (fig: ScheduledFigure): string => fig.n === 0
      ? 'n/a'
      : fig.median >= -set.PUSHPOOL_PREFETCH_SECONDS * 1000 && fig.median <= 2000 && fig.max <= 5000 ? 'met' : '**missed**'
    out.push(`### Steady state: the schedule added ${String(set.steady_schedule_added_s_before_first_due)} s (more than a reconcile tick) before its first run\n`)
    out.push(`Target (issue 15): median in [−${set.PUSHPOOL_PREFETCH_SECONDS * 1000}, +2000] ms and max ≤ +5000 ms.\n`)
    out.push('| | delay | left Scheduled via | target |\n|---|---|---|---|')
    out.push(`| **pushpool_reconcile_60s**: process timers (default), reconcile every ${set.pushpool_reconcile_every_s} s | ${f(s.pushpool_reconcile_60s, ' ms')} | ${JSON.stringify(s.pushpool_reconcile_60s.left_scheduled_via)} | ${target(s.pushpool_reconcile_60s)} |`)
    out.push(`| **pushpool_cloud_tasks_60s**: Cloud Tasks timers, reconcile every ${set.pushpool_reconcile_every_s} s | ${f(s.pushpool_cloud_tasks_60s, ' ms')} | ${JSON.stringify(s.pushpool_cloud_tasks_60s.left_scheduled_via)} | ${target(s.pushpool_cloud_tasks_60s)} |`)
    out.push(`| Prefect worker (process, defaults) | ${f(s.worker, ' ms')} | ${JSON.stringify(s.worker.left_scheduled_via)} | |`)
    out.push('')
    const fr = s.first_runs
    out.push(`### Apart: the first runs of a schedule added ${fr.schedule_added_s_before_first_due} s before its first run (every ${fr.every_s} s, all due within one tick)\n`)
    out.push('No reconcile pass need come between such a run\'s creation and its time, so no timer is armed for it: what bounds its delay is the first ' +
      `reconcile pass after its creation (at most one tick, ${set.pushpool_reconcile_every_s} s), or the Late event ${isoSeconds(late.late_runs.after_seconds)} s after it was due ` +
      `(found by a loop every ${late.late_runs.loop_seconds} s), whichever first. The Late event seldom reaches pushpool for them: Prefect links it to the ` +
      'run\'s Scheduled state, which the scheduler made without an event, and the triggers service holds an event whose predecessor it has not seen ' +
      '(for up to 15 minutes) when that predecessor is under 5 minutes old. "first pass" = when the first reconcile pass after the run\'s creation began, ' +
      'relative to the run\'s scheduled time.\n')
    out.push('| | delay | left Scheduled via | first pass after creation |\n|---|---|---|---|')
    const passes = (fig: ScheduledFigure): string => f(summarize(fig.runs.map(run => run.first_pass_after_creation_ms ?? Number.NaN)), ' ms')
    out.push(`| pushpool, process timers | ${f(fr.pushpool_reconcile_60s, ' ms')} | ${JSON.stringify(fr.pushpool_reconcile_60s.left_scheduled_via)} | ${passes(fr.pushpool_reconcile_60s)} |`)
    out.push(`| pushpool, Cloud Tasks timers | ${f(fr.pushpool_cloud_tasks_60s, ' ms')} | ${JSON.stringify(fr.pushpool_cloud_tasks_60s.left_scheduled_via)} | ${passes(fr.pushpool_cloud_tasks_60s)} |`)
    out.push(`| Prefect worker (process, defaults) | ${f(fr.worker, ' ms')} | ${JSON.stringify(fr.worker.left_scheduled_via)} | |`)
    out.push('')
    out.push('Each first run (delay / first pass after its creation, relative to its time; s): ' +
      [...fr.pushpool_reconcile_60s.runs, ...fr.pushpool_cloud_tasks_60s.runs]
        .map(run => `${run.label === 'pushpool_reconcile_60s' ? 'process' : 'tasks'} ${(run.delay_ms / 1000).toFixed(1)}${run.via === 'Late' ? ' (Late)' : ''} / ${run.first_pass_after_creation_ms === null ? '–' : (run.first_pass_after_creation_ms / 1000).toFixed(1)}`)
        .join('; ') + '\n')
  }

  if (r.api_calls_per_run !== undefined) {
    const a = r.api_calls_per_run
    out.push(`## 3. Cloud Run Admin API calls for a run that lasts ${a.run_seconds} s\n`)
    out.push(`Counted at the emulator, in real time: the execution ends after ${a.run_seconds} s; reconcile runs every ${a.reconcile_every_s} s (as Cloud Scheduler would) ` +
      'from a random phase until pushpool has closed the dispatch (and, per-run, deleted the job). Each repetition has its own emulator, pushpool and Prefect stand-in. ' +
      `Reuse mode is counted for a run after the instance's first (the first creates the shared job). The worker is ${a.worker_is}; ` +
      'the real worker cannot be pointed at the emulator (REST discovery client vs gRPC). In the emulator a job is Ready at once, so the model polls GetJob once; ' +
      'on Cloud Run it polls every 5 s until the job is Ready.\n')
    out.push('| | calls per run | by method (medians) |\n|---|---|---|')
    const row = (label: string, d: { median: number, min: number, max: number, n: number, by_method: Record<string, number> }): string =>
      `| ${label} | ${f(d)} | ${Object.entries(d.by_method).map(([k, v]) => `${k} ${v}`).join(', ')} |`
    out.push(row('pushpool, reuse mode', a.detail.reuse))
    out.push(row('pushpool, per-run mode', a.detail.per_run))
    out.push(row("Prefect's cloud-run-v2 worker (model)", a.detail.worker))
    out.push(row('pushpool, reuse mode, first run on a fresh instance', a.detail.reuse_first_run_on_instance))
    out.push('')
  }

  if (r.dispatch_cpu_ms !== undefined || r.real_prefect !== undefined) {
    out.push("## 4. pushpool's own cost\n")
    out.push('pushpool runs as its own process (the compiled build, logs at info to a file); CPU is its utime+stime from `/proc`, so the load generator, the ' +
      'Prefect stand-in (its own process, answers from memory with objects copied from the real server) and the emulator (its own process, zero latency, ' +
      'executions held running) are not counted. One dispatch = webhook → read run → propose Pending → render → RunJob → PATCH infrastructure_pid → 202 launched. ' +
      'After a warm-up of 50 dispatches.\n')
    out.push('| | stand-in | real Prefect (reference) |\n|---|---|---|')
    out.push(`| CPU per dispatch, one at a time | ${f(r.dispatch_cpu_ms, ' ms', 2)} | ${f(r.real_prefect?.dispatch_cpu_ms, ' ms', 2)} |`)
    out.push(`| … of which user (JavaScript) / system (kernel) | ${f(r.dispatch_cpu_ms?.user, ' ms', 2)} / ${f(r.dispatch_cpu_ms?.system, ' ms', 2)} | |`)
    out.push(`| CPU per dispatch, ${r.throughput?.stand_in.concurrency ?? '?'} in flight | ${f(r.dispatch_cpu_ms?.under_load, ' ms', 2)} | |`)
    out.push(`| latency of one dispatch (median per repetition) | ${f(r.dispatch_cpu_ms?.latency_ms, ' ms', 1)} | ${f(r.real_prefect?.dispatch_latency_ms, ' ms', 1)} |`)
    out.push(`| throughput (dispatches/s) | ${f(r.throughput?.stand_in)} with ${r.throughput?.stand_in.concurrency ?? '?'} in flight, ${r.throughput?.stand_in.runs_per_repetition ?? '?'} runs each | ${f(r.real_prefect?.throughput_per_s, '', 1)} with ${r.real_prefect?.throughput_per_s.concurrency ?? '?'} in flight, ${r.real_prefect?.throughput_per_s.runs_per_repetition ?? '?'} runs each |`)
    const variants: Array<[string, StoreVariantCost | undefined]> = [
      ['with the SQLite file on tmpfs (no fsync per commit)', r.dispatch_cpu_ms?.store_on_tmpfs],
      ['with the PostgreSQL store (the deployed store; loopback, its own CPU not counted)', r.dispatch_cpu_ms?.store_postgres]
    ]
    for (const [label, v] of variants) {
      if (v !== undefined) out.push(`| ${label}: CPU per dispatch / latency / throughput | ${f(v.cpu_ms, ' ms', 2)} / ${f(v.latency_ms, ' ms', 1)} / ${f(v.throughput_per_s, '/s')} | |`)
    }
    out.push(`| pushpool's CPU during the throughput runs (share of one core) | ${f(r.throughput?.stand_in.pushpool_cpu_share_of_one_core, '', 2)} | |`)
    out.push(`| Prefect API calls per dispatch | ${Object.entries(r.dispatch_cpu_ms?.prefect_calls_per_dispatch ?? {}).map(([k, v]) => `${k} ×${v}`).join(', ')} | |`)
    const failures = { ...r.throughput?.failures, ...r.real_prefect?.failures }
    if (Object.keys(failures).length > 0) out.push(`| replies other than 202 launched | ${JSON.stringify(r.throughput?.failures ?? {})} | ${JSON.stringify(r.real_prefect?.failures ?? {})} |`)
    out.push('')
  }

  if (r.cold_start_ready_ms !== undefined && r.cold_start_first_dispatch_ms !== undefined) {
    const ready = r.cold_start_ready_ms
    const first = r.cold_start_first_dispatch_ms
    out.push('## 5. Cold start\n')
    out.push('From just before `spawn()` until `/readyz` answers 200 (polled every 2 ms), and until the first webhook is answered 202 launched ' +
      '(the Google client is loaded on first use). A fresh process and SQLite file each time; peers already up. The variants take turns, one start ' +
      'of each per round, so a change in load falls on all alike. CPU = the process\'s user + system time (10 ms ticks), which a busy machine inflates ' +
      'less than wall time; load = the 1-minute load average when each start began.\n')
    out.push('| | until /readyz 200 | CPU | until first dispatch | CPU | RSS at ready | load |\n|---|---|---|---|---|---|---|')
    const envOf = (e: Record<string, string>): string => Object.keys(e).length === 0 ? '' : ` with ${Object.entries(e).map(([k, v]) => `${k}=${v}`).join(' ')}`
    const row = (label: string, name: string, a: ColdStartFigure, b: ColdStartFigure): string =>
      `| ${label}: \`node ${a.entry}\`${envOf(a.env)} | ${f(a, ' ms')} | ${f(a.cpu_ms, ' ms')} | ${f(b, ' ms')} | ${f(b.cpu_ms, ' ms')} | ${f(r.cold_start_rss_ready_mb?.[name], ' MB', 1)} | ${f(a.load_1m, '', 2)} |`
    out.push(row('**artifact**, as the image runs it', 'artifact', ready, first))
    for (const [name, figure] of Object.entries(ready.variants)) out.push(row(name, name, figure, first.variants[name]))
    out.push('')
    const mc = r.module_cost
    if (mc !== undefined) {
      out.push('What start-up loads, run from the sources (the artifact bundles the same module graph, but runs only what it reaches: with its routes\' ' +
        `schemas compiled at build time it does not run Ajv), and each package imported alone into a fresh \`node\` (median of 3; RSS over a bare node process of ${mc.bare_node_rss_mb} MB):\n`)
      out.push('| package | loaded before /readyz, from the sources | import | RSS |\n|---|---|---|---|')
      for (const p of mc.packages) out.push(`| ${p.package} | ${p.loaded_at_startup ? 'yes' : 'no (on first use)'} | ${p.import_ms} ms | +${p.rss_mb} MB |`)
      out.push('')
    }
  }

  if (r.memory !== undefined) {
    const mem = r.memory
    out.push('## 6. Memory\n')
    out.push(`RSS of the pushpool process (\`node ${mem.entry}\`${Object.keys(mem.env).length === 0 ? '' : ` with ${Object.entries(mem.env).map(([k, v]) => `${k}=${v}`).join(' ')}, the image's ENV`}) from \`/proc\`, ` +
      `against the in-memory Prefect stand-in; the 1-minute load average was ${num(mem.load_1m, 2)} when the idle figures were taken. Idle = 3 s without traffic (the target's reading), and again ${mem.idle_settled_ms / 1000} s after the first dispatch. ` +
      `Each burst sends its webhooks ${mem.concurrency} at a time, the deployed concurrency (cloudbuild.yaml's _CONCURRENCY: Cloud Run's --concurrency and PUSHPOOL_MAX_IN_FLIGHT). ` +
      `Peak = the kernel's high-water mark (VmHWM) so far; after = RSS ${mem.settle_ms / 1000} s after the burst. One process, so n=1 for each value.\n`)
    out.push('| | RSS | load |\n|---|---|---|')
    out.push(`| idle after start-up | ${num(mem.rss_idle_start_mb, 1)} MB | ${num(mem.load_1m, 2)} |`)
    out.push(`| **rss_idle_mb**: idle after the first dispatch (Google client loaded) | **${num(mem.rss_idle_warm_mb, 1)} MB** | ${num(mem.load_1m, 2)} |`)
    out.push(`| idle ${mem.idle_settled_ms / 1000} s after the first dispatch (V8's memory reducer, 8 s after activity, has run) | ${num(mem.rss_idle_settled_mb, 1)} MB | |`)
    mem.bursts.forEach((b, i) => {
      out.push(`| burst ${i + 1}: ${b.runs} webhooks, ${mem.concurrency} at once → peak | ${num(b.peak_rss_mb, 1)} MB (${b.launched} launched in ${num(b.wall_ms / 1000, 1)} s; ${JSON.stringify(b.replies)}) | ${num(b.load_1m, 2)} |`)
      out.push(`| burst ${i + 1}: ${mem.settle_ms / 1000} s later | ${num(b.rss_after_mb, 1)} MB | |`)
    })
    out.push(`| **rss_after_burst_mb** (the highest "later") | **${num(r.rss_after_burst_mb, 1)} MB** | |`)
    out.push('')
  }

  if (r.burst !== undefined) {
    const b = r.burst
    out.push('## 7. A burst under a quota\n')
    out.push(`${b.runs} runs created at once in the Prefect stand-in and each announced by its webhook, all at once. The emulator adds ${b.runjob_latency_ms} ms to every RunJob ` +
      `(a latency-only fault) and answers RESOURCE_EXHAUSTED above ${b.quota_per_minute} RunJob calls a minute (sliding window). Reconcile every ${b.reconcile_every_s} s, ` +
      `\`PUSHPOOL_RETRY_DELAY_SECONDS=${b.retry_delay_s}\`. One run (the quota alone makes it last ${b.quota_bound_s / 60} minutes or more), so n=1. ` +
      "Why the stand-in: the real SQLite-backed Prefect server on this machine created under one run a second while pushpool read and wrote it, so 1,000 runs 'at once' could not be had from it.\n")
    out.push('| | |\n|---|---|')
    out.push(`| **drain** (until every run has an execution) | **${num(b.drain_s, 1)} s** (the quota alone allows no less than ~${b.quota_bound_s} s) |`)
    out.push(`| **duplicates** (executions beyond one per run) | **${b.duplicates}** |`)
    out.push(`| **lost** (runs without an execution at the end) | **${b.lost}** |`)
    out.push(`| webhook replies | ${JSON.stringify(b.webhook_replies)} |`)
    out.push(`| RunJob calls (rejected by the quota) | ${b.runjob_calls} (${b.runjob_rejected}) |`)
    out.push(`| all Cloud Run calls | ${JSON.stringify(b.calls)} |`)
    out.push(`| reconcile calls answered / failed at the HTTP level | ${b.reconcile_passes} / ${b.reconcile_call_errors} |`)
    out.push(`| dispatch states at the end | ${JSON.stringify(b.dispatch_states)} |`)
    out.push(`| pushpool peak RSS | ${num(b.peak_rss_mb, 1)} MB |`)
    out.push(`| CPU during the burst | pushpool ${num(b.cpu_s.pushpool, 1)} s, bench process (emulator, stand-in, load) ${num(b.cpu_s.bench_process, 1)} s, over ${num(b.cpu_s.wall, 0)} s |`)
    out.push(`| launch attempts failed / dispatches handed to reconcile (pushpool's log) | ${b.attempts_failed} / ${b.handed_to_reconcile} |`)
    out.push(`| reconcile passes: duration, launched checked, dispatches driven | ${b.reconcile.map(p => `${(p.duration_ms / 1000).toFixed(0)} s/${p.checked}/${p.driven}${p.truncated ? ' (budget hit)' : ''}`).join('; ')} |`)
    out.push(`| runs with an execution over time | ${b.timeline.map(t => `${t.t_s} s: ${t.with_execution}`).join(', ')} |`)
    out.push('')
  }

  if (r.profiles !== undefined) {
    out.push('## Profiles\n')
    out.push('`node --cpu-prof` on the compiled build; samples cut to the window named. Self time is wall time on the main thread, so it includes ' +
      'time blocked in native calls (e.g. an SQLite commit\'s fsync) and idle time waiting for peers. Raw profiles: `bench/tmp/profiles/`.\n')
    out.push(profileSection('Dispatch, one webhook at a time', r.profiles.dispatch_one_at_a_time, `${String(r.profiles.dispatch_one_at_a_time?.dispatches ?? '?')} dispatches against the stand-in:`))
    out.push(profileSection('Dispatch under load', r.profiles.dispatch_loaded, `${String(r.profiles.dispatch_loaded?.dispatches ?? '?')} dispatches, ${String(r.profiles.dispatch_loaded?.concurrency ?? '?')} in flight:`))
    out.push(profileSection('Cold start until /readyz', r.profiles.cold_start_until_ready, `One start, until ready at ${num(r.profiles.cold_start_until_ready?.ready_ms as number | undefined)} ms:`))
    out.push(profileSection('Cold start: the first dispatch', r.profiles.cold_start_first_dispatch, 'From ready to the first 202 launched:'))
  }
  writeFileSync(markdown, `${out.join('\n')}\n`)
  return { json, markdown }
}
