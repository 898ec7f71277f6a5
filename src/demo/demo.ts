// `pushpool demo`: brings the whole push pool up offline, sets up the Prefect side with
// `pushpool setup`, deploys the example flows, triggers runs that show each feature — every
// webhook delivered by Prefect's own automation — and reports how each ended.
import { constants } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { PrefectClient } from '../prefect/client.ts'
import type { FlowRun } from '../prefect/types.ts'
import type { Dispatch } from '../store/store.ts'
import { runSetup } from '../setup/setup.ts'
import { healthStatus } from '../devstack/prefect-server.ts'
import { startStack, type Stack } from './stack.ts'
import { firstStopSignal, Teardown } from './teardown.ts'
import { SCENARIOS, EXAMPLE_FLOWS_DIR, type Scenario } from './scenarios.ts'
import { formatTable, type Row } from './table.ts'
import { CONTAINER_LOGGER } from '../prefect/flow-run-logs.ts'

export const DEMO_HELP = `Usage: pushpool demo [--exit]

Brings up a Prefect server, the Cloud Run emulator and pushpool on loopback, runs \`pushpool setup\`,
deploys the flows in examples/flows and triggers runs that complete, fail, crash, start on
schedule and get cancelled. Prefect's automation delivers every webhook.

Options:
  --exit      Exit when every run has ended: 0 if each ended as expected, 1 otherwise.
              Without it the stack keeps running (with Prefect's UI and its login,
              and pushpool's admin API) until Ctrl-C.
  -h, --help  Show this help.

SIGINT or SIGTERM at any point stops everything the demo started, then ends the demo
by that signal.
`

const POOL = 'pushpool-demo'
const DEADLINE_MS = 240_000
const DEMO_CALL_TIMEOUT_MS = 30_000
/** Cloud Scheduler's shortest period, which the deploy guide sets for reconcile. */
const RECONCILE_EVERY_MS = 60_000
/** How long the demo waits for a crashed run's container lines to reach Prefect's logs. */
const CRASH_LINES_WAIT_MS = 15_000

interface Tracked { scenario: Scenario, flowRunId: string, cancelRequested: boolean }

const LATENCY_NOTE = '"to launch": launch latency, from the run\'s scheduled start (its creation when it is to start at once) to\n' +
  'Cloud Run accepting its execution; negative when the container was started ahead of a due time, within\n' +
  'PUSHPOOL_PREFETCH_SECONDS (Prefect holds the engine until then). The scheduled run is started by the timer\n' +
  'its webhook armed, with reconcile once a minute, as Cloud Scheduler calls it in production.'

export async function demo (argv: string[], out: (line: string) => void = line => { process.stdout.write(`${line}\n`) }): Promise<number> {
  const teardown = new Teardown()
  const stopSignal = firstStopSignal(signal => {
    out(`• ${signal} again: exiting without waiting for the stack to stop`)
    process.exit(130)
  })
  const running = { waitingForCtrlC: false }
  // A show interrupted mid-step goes on until the stack goes away under it: from the stop on, its
  // lines would land among the stop's, so they are dropped.
  let showing = true
  const show = (line: string): void => { if (showing) out(line) }
  const main = showcaseWithRestarts(argv.includes('--exit'), show, teardown, stopSignal.received, running)
  try {
    const ended = await Promise.race([
      main.then(code => ({ code })),
      stopSignal.received.then(signal => ({ signal }))
    ])
    showing = false
    const signalled = 'signal' in ended && !running.waitingForCtrlC ? ended.signal : null
    if (signalled !== null) {
      // The interrupted run may now fail on the stack going away under it; only the stop matters.
      main.catch(() => undefined)
      out(`• ${signalled}: stopping everything the demo started`)
    } else {
      out('• stopping everything the demo started')
    }
    const stopping = Date.now()
    await teardown.run()
    out(`• stopped in ${((Date.now() - stopping) / 1000).toFixed(1)} s`)
    if (signalled === null) return 'code' in ended ? ended.code : 0
    // Ended by the signal itself, as an interrupted program should: the caller (npm, a shell
    // script) sees it so and stays quiet instead of reporting a failed command.
    stopSignal.release()
    process.kill(process.pid, signalled)
    // Without a listener the kill is immediate. A listener of another library (signal-exit, say)
    // handles it on the event loop, which must stay alive for it; else the conventional status.
    await sleep(1000)
    return 128 + constants.signals[signalled]
  } catch (err) {
    // What failed, in words (a peer's message names the call and the cause), then the same stop.
    const cause = (err as Error).cause instanceof Error ? ` (${((err as Error).cause as Error).message})` : ''
    out(`• the demo failed: ${(err as Error).message ?? String(err)}${cause}`)
    out('• stopping everything the demo started')
    await teardown.run()
    return 1
  } finally {
    stopSignal.release()
  }
}

/**
 * Prefect's own server stopped answering, its health route too. Prefect 3.8's server on SQLite
 * sometimes deadlocks while its automations call webhooks (every thread waits on a lock; README,
 * "The two commands"): nothing pushpool does can bring it back, so the demo starts afresh.
 */
class PrefectServerHung extends Error {}

/** How long Prefect's health route may take before the server counts as hung. */
const HEALTH_PROBE_MS = 10_000

/** How many fresh stacks the demo tries when Prefect's server hangs under it. */
const ATTEMPTS = 3

/** The showcase, started again on a fresh stack if Prefect's server hangs under it. */
async function showcaseWithRestarts (exitWhenDone: boolean, out: (line: string) => void, teardown: Teardown,
  stopRequested: Promise<NodeJS.Signals>, running: { waitingForCtrlC: boolean }): Promise<number> {
  // Once asked to stop, a stack going away under the show is the stop, not a hang.
  let stopping = false
  void stopRequested.then(() => { stopping = true })
  for (let attempt = 1; ; attempt++) {
    const stage = new Teardown()
    teardown.add(() => stage.run())
    try {
      return await showcase(exitWhenDone, out, stage, stopRequested, running)
    } catch (err) {
      if (!(err instanceof PrefectServerHung) || attempt >= ATTEMPTS || stopping) throw err
      out(`• ${err.message}: starting everything again (attempt ${attempt + 1} of ${ATTEMPTS})`)
      await stage.run()
    }
  }
}

/** Whether a Prefect server that let a call time out is hung: its health route is silent too. */
async function hung (stack: Stack): Promise<boolean> {
  return await healthStatus(stack.prefect.apiUrl, stack.prefect.authString, HEALTH_PROBE_MS) === null
}

/** Brings the stack up, runs the scenarios and reports; without --exit, then waits for Ctrl-C. */
async function showcase (exitWhenDone: boolean, out: (line: string) => void, teardown: Teardown,
  stopRequested: Promise<NodeJS.Signals>, running: { waitingForCtrlC: boolean }): Promise<number> {
  const stack = await startStack({ pool: POOL, ui: !exitWhenDone, progress: line => { out(`• ${line}`) } }, teardown)
  try {
    return await stage(stack, exitWhenDone, out, teardown, stopRequested, running)
  } catch (err) {
    if (await hung(stack)) throw new PrefectServerHung(`Prefect's server stopped answering, even on /health (${(err as Error).message})`, { cause: err })
    throw err
  }
}

/** Sets the pool up, deploys and triggers the scenarios, watches them end and reports. */
async function stage (stack: Stack, exitWhenDone: boolean, out: (line: string) => void, teardown: Teardown,
  stopRequested: Promise<NodeJS.Signals>, running: { waitingForCtrlC: boolean }): Promise<number> {
  // The demo's own calls (deploy, trigger, watch) wait as long as a local Prefect on SQLite may
  // take on a busy laptop; they stage the show, so a slow answer is no failure of pushpool's.
  const prefect = new PrefectClient({ apiUrl: stack.prefect.apiUrl, authString: stack.prefect.authString ?? null, apiKey: null, timeoutMs: DEMO_CALL_TIMEOUT_MS })
  teardown.add(async () => { prefect.close() })
  out('• pushpool setup: work pool, Webhook block and automations')
  const report = await runSetup({ apiUrl: stack.prefect.apiUrl, authString: stack.prefect.authString ?? null, apiKey: null }, {
    pool: POOL, adopt: false, url: stack.pushpoolUrl, webhookSecret: stack.webhookSecret,
    webhookSecretSource: 'the demo', dryRun: false
  })
  for (const r of report.results) out(`  ${r.outcome.padEnd(9)} ${r.kind} ${r.name}`)

  out('• deploying examples/flows and triggering one run per scenario')
  const tracked: Tracked[] = []
  for (const scenario of SCENARIOS) {
    const deploymentId = await deploy(prefect, scenario)
    const when = scenario.scheduleIn === undefined ? undefined : new Date(Date.now() + scenario.scheduleIn * 1000).toISOString()
    const run = await prefect.request<FlowRun>('POST', `/deployments/${deploymentId}/create_flow_run`, undefined,
      when === undefined ? {} : { state: { type: 'SCHEDULED', name: 'Scheduled', state_details: { scheduled_time: when } } })
    if (run === null) throw new Error(`Prefect did not create a flow run for ${scenario.name}`)
    tracked.push({ scenario, flowRunId: run.id, cancelRequested: false })
    out(`  ${scenario.name.padEnd(10)} ${scenario.shows}`)
  }

  const rows = await watch(stack, prefect, tracked, out)
  out('')
  out(formatTable(rows))
  out(LATENCY_NOTE)
  out('')
  for (const t of tracked.filter(t => t.scenario.expect.prefect === 'CRASHED')) await showCrash(prefect, t, out)
  const ok = rows.every(r => r.ok)
  out(ok ? 'every run ended as expected' : 'some runs did not end as expected (marked ✗)')
  out('')
  if (exitWhenDone) {
    // Nothing below outlives the demo in this mode, so nothing is offered to look at later.
    out('The stack stops now (--exit). Run `npm run demo` without --exit to keep it running, with Prefect\'s UI and pushpool\'s admin API.')
    return ok ? 0 : 1
  }
  out(`Prefect UI:   ${stack.prefect.uiUrl}`)
  // The server wants Basic auth; its UI asks for the whole user:password as its "password".
  out(`              log in with the password ${stack.prefect.authString ?? '(none needed)'}`)
  out(`pushpool:     ${stack.pushpoolUrl}, log ${stack.logFile}`)
  out('Admin API examples:')
  out(`  curl -s -H "Authorization: Bearer ${stack.adminToken}" ${stack.pushpoolUrl}/v1/dispatches`)
  out(`  curl -s -H "Authorization: Bearer ${stack.adminToken}" ${stack.pushpoolUrl}/v1/pools`)
  out(`  curl -s -H "Authorization: Bearer ${stack.adminToken}" ${stack.pushpoolUrl}/metrics`)
  out('')
  out('The stack keeps running; press Ctrl-C to stop it.')
  running.waitingForCtrlC = true
  await stopRequested
  return 0
}

async function deploy (prefect: PrefectClient, scenario: Scenario): Promise<string> {
  const flow = await prefect.request<{ id: string }>('POST', '/flows/', undefined, { name: scenario.flow })
  const deployment = await prefect.request<{ id: string }>('POST', '/deployments/', undefined, {
    name: scenario.name,
    flow_id: flow?.id,
    work_pool_name: POOL,
    entrypoint: `${scenario.flow}.py:${scenario.flow}`,
    pull_steps: [{ 'prefect.deployments.steps.set_working_directory': { directory: EXAMPLE_FLOWS_DIR } }],
    job_variables: scenario.jobVariables ?? {}
  })
  if (deployment?.id === undefined) throw new Error(`Prefect did not create the ${scenario.name} deployment`)
  return deployment.id
}

/**
 * Watches every 2 s until every run has ended, reconciling once a minute as Cloud Scheduler does in
 * production: a run due later starts from the timer its webhook armed, and a run ends in the ledger
 * when the emulator pushes its execution's end; reconcile only catches what those missed.
 */
async function watch (stack: Stack, prefect: PrefectClient, tracked: Tracked[], out: (line: string) => void): Promise<Row[]> {
  const deadline = Date.now() + DEADLINE_MS
  const terminal = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED'])
  let last = ''
  let nextReconcile = Date.now() + RECONCILE_EVERY_MS
  for (;;) {
    if (Date.now() >= nextReconcile) {
      nextReconcile += RECONCILE_EVERY_MS
      await stack.pushpool.inject({ method: 'POST', url: '/v1/reconcile', headers: { authorization: `Bearer ${stack.adminToken}` } })
    }
    const runs = await Promise.all(tracked.map(t => prefect.readFlowRun(t.flowRunId)))
    for (const [i, t] of tracked.entries()) {
      if (t.scenario.cancelWhenRunning === true && !t.cancelRequested && runs[i]?.state?.type === 'RUNNING') {
        t.cancelRequested = true
        await prefect.setFlowRunState(t.flowRunId, { type: 'CANCELLING', name: 'Cancelling' }, false)
      }
    }
    const dispatches = await Promise.all(tracked.map(t => stack.pushpool.store.latestDispatchForFlowRun(t.flowRunId)))
    const progress = tracked.map((t, i) => `${t.scenario.name}=${runs[i]?.state?.name ?? '?'}/${dispatches[i]?.state ?? '-'}`).join('  ')
    if (progress !== last) { out(`  ${progress}`); last = progress }
    const done = tracked.every((t, i) => terminal.has(runs[i]?.state?.type ?? '') &&
      dispatches[i] !== null && dispatches[i]?.state === t.scenario.expect.dispatch)
    if (done || Date.now() > deadline) return tracked.map((t, i) => row(t, runs[i], dispatches[i]))
    await sleep(2000)
  }
}

/** A crashed run as Prefect shows it: the state's message, and the container's lines pushpool wrote into its logs. */
async function showCrash (prefect: PrefectClient, t: Tracked, out: (line: string) => void): Promise<void> {
  const run = await prefect.readFlowRun(t.flowRunId)
  out(`The ${t.scenario.name} run in Prefect: ${run?.state?.name ?? 'unknown'}: ${run?.state?.message ?? ''}`)
  // The lines go to Prefect in the background, within a second or so of the crash.
  let lines: string[] = []
  for (const giveUp = Date.now() + CRASH_LINES_WAIT_MS; lines.length === 0 && Date.now() < giveUp; await sleep(500)) {
    const logs = await prefect.request<Array<{ name: string, message: string }>>('POST', '/logs/filter', undefined,
      { logs: { flow_run_id: { any_: [t.flowRunId] } }, sort: 'TIMESTAMP_ASC', limit: 200 })
    lines = (logs ?? []).filter(l => l.name === CONTAINER_LOGGER).map(l => l.message)
  }
  if (lines.length === 0) out('  (its container lines have not reached Prefect\'s logs)')
  for (const line of lines) out(`  ${line}`)
  out('')
}

function row (t: Tracked, run: FlowRun | null, dispatch: Dispatch | null): Row {
  const launchedAt = dispatch?.launchedAt ?? null
  // Prefect's expected start is the scheduled time of the run's Scheduled state (LATENCY_NOTE).
  const scheduledStart = run?.expected_start_time ?? null
  const latencyMs = launchedAt === null || scheduledStart === null ? null : Date.parse(launchedAt) - Date.parse(scheduledStart)
  const { launchWithinMs } = t.scenario.expect
  return {
    scenario: t.scenario.name,
    prefect: run?.state?.name ?? 'unknown',
    dispatch: dispatch?.state ?? 'none',
    execution: dispatch?.executionName?.split('/').at(-1) ?? '-',
    latencyMs,
    ok: run?.state?.type === t.scenario.expect.prefect && dispatch?.state === t.scenario.expect.dispatch &&
      (launchWithinMs === undefined || (latencyMs !== null && latencyMs <= launchWithinMs))
  }
}
