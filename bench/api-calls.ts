// Figure 3, Cloud Run Admin API calls for one flow run that lasts RUN_SECONDS, counted at the
// emulator: pushpool in reuse mode, pushpool in per-run mode, and the sequence of Prefect's own
// cloud-run-v2 worker (worker-model.ts). Everything runs in real time: the execution ends after
// RUN_SECONDS, and reconcile runs every RECONCILE_SECONDS (Cloud Scheduler's once a minute) from a
// random phase, until pushpool has closed the dispatch (and, per-run, deleted the job). Each
// repetition has its own emulator, pushpool and Prefect stand-in, so counts are per run; the
// repetitions run side by side.
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEmulator, type Emulator } from '../src/emulator/index.ts'
import { buildServer } from '../src/server.ts'
import { loadConfig } from '../src/config.ts'
import { startPrefectStandIn, type StandInSeed } from '../src/devstack/prefect-standin.ts'
import { ADMIN_TOKEN, TMP, WEBHOOK_SECRET, webhookBody } from './pushpool-process.ts'
import { runWorkerModel } from './worker-model.ts'

export type CallCounts = Record<string, number>

export interface ApiCallsResult {
  reuse: CallCounts[]
  per_run: CallCounts[]
  worker: CallCounts[]
  /** Reuse mode, the first run on a fresh instance (its job is created, or found to exist). */
  reuse_first_on_instance: CallCounts[]
}

export interface ApiCallsOptions {
  seed: StandInSeed
  repetitions: number
  runSeconds: number
  reconcileSeconds: number
  workerPollSeconds: number
  log: (line: string) => void
}

export const total = (counts: CallCounts): number => Object.values(counts).reduce((a, b) => a + b, 0)

export async function measureApiCalls (o: ApiCallsOptions): Promise<ApiCallsResult> {
  const reps = Array.from({ length: o.repetitions }, (_, i) => i)
  const [reuse, perRun, worker] = await Promise.all([
    Promise.all(reps.map(i => pushpoolRun(o, 'reuse', i))),
    Promise.all(reps.map(i => pushpoolRun(o, 'per-run', i))),
    Promise.all(reps.map(() => workerRun(o)))
  ])
  return {
    reuse: reuse.map(r => r.measured),
    per_run: perRun.map(r => r.measured),
    worker,
    reuse_first_on_instance: reuse.map(r => r.first)
  }
}

async function pushpoolRun (o: ApiCallsOptions, mode: 'reuse' | 'per-run', index: number): Promise<{ measured: CallCounts, first: CallCounts }> {
  const emulator = await startEmulator({ executions: 'hold' })
  const prefect = await startPrefectStandIn(o.seed)
  const dir = mkdtempSync(join(TMP, `api-calls-${mode}-`))
  const app = await buildServer(loadConfig({
    PUSHPOOL_STORE_URL: `sqlite:${join(dir, 'pushpool.db')}`,
    PUSHPOOL_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    PUSHPOOL_ADMIN_TOKENS: ADMIN_TOKEN,
    PREFECT_API_URL: prefect.apiUrl,
    PUSHPOOL_POOLS: o.seed.workPool.name,
    PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
    PUSHPOOL_GCP_PROJECT: 'bench',
    PUSHPOOL_JOB_MODE: mode,
    LOG_LEVEL: 'silent'
  }))
  await app.ready()
  const webhook = async (flowRunId: string): Promise<string> => {
    const res = await app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: { authorization: `Bearer ${WEBHOOK_SECRET}`, 'content-type': 'application/json' }, payload: webhookBody(flowRunId) })
    const body = res.json()
    if (res.statusCode !== 202 || body.state !== 'launched') throw new Error(`webhook answered ${res.statusCode} ${res.body}`)
    return body.dispatch_id
  }
  const reconcile = async (): Promise<void> => {
    const res = await app.inject({ method: 'POST', url: '/v1/reconcile', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    if (res.statusCode !== 200) throw new Error(`reconcile answered ${res.statusCode} ${res.body}`)
  }
  const dispatchState = async (id: string): Promise<string> =>
    (await app.inject({ method: 'GET', url: `/v1/dispatches/${id}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json().dispatch.state

  try {
    // The first run on this instance, ended and closed before counting starts: in reuse mode it
    // creates the shared job, which later runs find in place.
    const [warm] = prefect.createFlowRuns(1)
    const warmDispatch = await webhook(warm)
    emulator.finishExecution(executionOf(emulator, warm), { exitCode: 0 })
    prefect.setFlowRunState(warm, 'COMPLETED', 'Completed')
    await reconcile()
    if (await dispatchState(warmDispatch) !== 'succeeded') {
      const detail = (await app.inject({ method: 'GET', url: `/v1/dispatches/${warmDispatch}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()
      throw new Error(`warm-up dispatch did not close: ${JSON.stringify(detail.events)}`)
    }
    const first = emulator.calls()
    emulator.resetCalls()

    const [run] = prefect.createFlowRuns(1)
    const dispatchId = await webhook(run)
    const execution = executionOf(emulator, run)
    const jobName = execution.slice(0, execution.indexOf('/executions/'))
    const ends = setTimeout(() => {
      emulator.finishExecution(execution, { exitCode: 0 })
      prefect.setFlowRunState(run, 'COMPLETED', 'Completed')
    }, o.runSeconds * 1000)
    // Cloud Scheduler's reconcile: every RECONCILE_SECONDS from a random phase.
    await sleep(Math.random() * o.reconcileSeconds * 1000)
    for (;;) {
      await reconcile()
      const closed = await dispatchState(dispatchId) === 'succeeded'
      const jobGone = mode === 'reuse' || !emulator.jobs().some(j => j.name === jobName)
      if (closed && jobGone) break
      await sleep(o.reconcileSeconds * 1000)
    }
    clearTimeout(ends)
    const measured = emulator.calls()
    o.log(`  ${mode} #${index + 1}: ${JSON.stringify(measured)}`)
    return { measured, first }
  } finally {
    await app.close()
    await prefect.close()
    await emulator.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

function executionOf (emulator: Emulator, flowRunId: string): string {
  const found = emulator.executions().find(e =>
    (e.template?.containers?.[0]?.env ?? []).some(v => v.name === 'PREFECT__FLOW_RUN_ID' && v.value === flowRunId))
  if (found === undefined) throw new Error(`no execution for flow run ${flowRunId}`)
  return found.name
}

async function workerRun (o: ApiCallsOptions): Promise<CallCounts> {
  const emulator = await startEmulator({ executions: 'hold' })
  try {
    await runWorkerModel({
      endpoint: emulator.endpoint,
      project: 'bench',
      region: 'us-central1',
      jobId: `hello-${Math.random().toString(16).slice(2, 9)}`,
      pollMs: o.workerPollSeconds * 1000,
      onExecution: name => { setTimeout(() => emulator.finishExecution(name, { exitCode: 0 }), o.runSeconds * 1000) }
    })
    const counts = emulator.calls()
    o.log(`  worker model: ${JSON.stringify(counts)}`)
    return counts
  } finally {
    await emulator.close()
  }
}
