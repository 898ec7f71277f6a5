// The real peers: one Prefect 3 server on loopback (from the repo's virtualenv), a pool served by
// pushpool through `pushpool setup`'s automation, and a `process` pool served by Prefect's own
// polling worker with default settings.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { ensurePrefectVenv, type PrefectVenv } from '../src/devstack/venv.ts'
import { startPrefectServer, type PrefectServer } from '../src/devstack/prefect-server.ts'
import { PrefectFixtures, serviceAccountKey } from '../test/harness/prefect-fixtures.ts'
import { exampleDeploymentFields } from '../test/harness/example-flows.ts'
import { runSetup } from '../src/setup/setup.ts'
import { spawnChild, type Child } from './children.ts'
import { TMP, WEBHOOK_SECRET } from './pushpool-process.ts'
import type { State } from '../src/prefect/types.ts'

export interface RealPrefect {
  venv: PrefectVenv
  server: PrefectServer
  apiUrl: string
  authString: string
  fixtures: PrefectFixtures
  /** Extra environment the server was started with (what the bench tuned). */
  serverEnv: Record<string, string>
  stop (): Promise<void>
}

export async function startRealPrefect (log: (line: string) => void): Promise<RealPrefect> {
  const venv = await ensurePrefectVenv({ onProgress: line => log(`  pip: ${line}`) })
  const authString = `bench:${randomBytes(16).toString('hex')}`
  // Prefect's own defaults for its services, the devstack's tuning left out: the Late threshold
  // (15 s) and its loop (5 s), the scheduler's loops (60 s, and 5 s for deployments just changed).
  // What the server ran with is read back from it (lateAndSchedulerSettings) for the results.
  const serverEnv: Record<string, string> = {}
  const server = await startPrefectServer({ venv, authString, env: serverEnv, fastServices: false, startTimeoutMs: 180_000 })
  return {
    venv,
    server,
    apiUrl: server.apiUrl,
    authString,
    fixtures: new PrefectFixtures(server.apiUrl, authString),
    serverEnv,
    stop: () => server.stop()
  }
}

/** The settings of the services that bound a scheduled run's start, as the server reports them (GET /admin/settings). */
export interface LateAndSchedulerSettings {
  late_runs: { after_seconds: string, loop_seconds: number }
  scheduler: { loop_seconds: number, recent_deployments_loop_seconds: number, min_scheduled_time: string }
  /** Whether every one is Prefect's default. */
  defaults: boolean
}

/** Prefect's defaults for these (prefect/settings/models/server/services.py), to say whether the server ran with them. */
const SERVICE_DEFAULTS = { after: 15, lateLoop: 5, schedulerLoop: 60, recentLoop: 5 }

export async function lateAndSchedulerSettings (prefect: RealPrefect): Promise<LateAndSchedulerSettings> {
  const all = await prefect.fixtures.request<{ server?: { services?: Record<string, Record<string, unknown>> } }>('GET', '/admin/settings')
  const late = all.server?.services?.late_runs ?? {}
  const scheduler = all.server?.services?.scheduler ?? {}
  const settings = {
    late_runs: { after_seconds: String(late.after_seconds), loop_seconds: Number(late.loop_seconds) },
    scheduler: {
      loop_seconds: Number(scheduler.loop_seconds),
      recent_deployments_loop_seconds: Number(scheduler.recent_deployments_loop_seconds),
      min_scheduled_time: String(scheduler.min_scheduled_time)
    }
  }
  return {
    ...settings,
    defaults: isoSeconds(settings.late_runs.after_seconds) === SERVICE_DEFAULTS.after && settings.late_runs.loop_seconds === SERVICE_DEFAULTS.lateLoop &&
      settings.scheduler.loop_seconds === SERVICE_DEFAULTS.schedulerLoop && settings.scheduler.recent_deployments_loop_seconds === SERVICE_DEFAULTS.recentLoop
  }
}

/** Seconds of an ISO 8601 duration as Prefect serialises a timedelta (PT15S, PT1M30S), or of a number. */
export function isoSeconds (duration: string): number {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(duration)
  if (m === null) return Number(duration)
  return Number(m[1] ?? 0) * 86400 + Number(m[2] ?? 0) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0)
}

/**
 * A cloud-run-v2 pool with a GCP Credentials block as its default credentials, and the webhook
 * block and automations that `pushpool setup` creates, pointing at pushpool's URL.
 */
export async function setupPushpoolPool (prefect: RealPrefect, pool: string, pushpoolUrl: string, withAutomation: boolean): Promise<void> {
  const block = `${pool}-gcp`
  await prefect.fixtures.createGcpCredentialsBlock(block, { service_account_info: serviceAccountKey('bench'), project: 'bench' })
  await runSetup({ apiUrl: prefect.apiUrl, authString: prefect.authString, apiKey: null }, {
    pool,
    adopt: false,
    credentialsBlock: block,
    url: pushpoolUrl,
    webhookSecret: WEBHOOK_SECRET,
    webhookSecretSource: 'PUSHPOOL_WEBHOOK_SECRETS',
    dryRun: false
  })
  if (!withAutomation) {
    // The cost runs send webhooks themselves: the automations must stay quiet.
    const automations = await prefect.fixtures.request<Array<{ id: string, name: string }>>('POST', '/automations/filter', {})
    for (const a of automations.filter(a => a.name.startsWith(`${pool}:`))) await prefect.fixtures.request('DELETE', `/automations/${a.id}`)
  }
}

/** A deployment of examples/flows/hello.py in `pool`, runnable by a process worker. */
export async function helloDeployment (prefect: RealPrefect, pool: string, name: string): Promise<string> {
  const flowId = await prefect.fixtures.createFlow('hello')
  return await prefect.fixtures.createDeployment({ name, flowId, workPoolName: pool, ...exampleDeploymentFields('hello') })
}

export interface Worker {
  child: Child
  home: string
  stop (): Promise<void>
}

/** `prefect worker start --type process --pool <pool>` with default settings. */
export async function startProcessWorker (prefect: RealPrefect, pool: string): Promise<Worker> {
  const home = mkdtempSync(join(tmpdir(), 'pushpool-bench-worker-'))
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PREFECT_'))),
    PATH: `${prefect.venv.bin}:${process.env.PATH ?? ''}`,
    PREFECT_HOME: home,
    PREFECT_API_URL: prefect.apiUrl,
    PREFECT_API_AUTH_STRING: prefect.authString,
    DO_NOT_TRACK: '1'
  }
  const child = await spawnChild(prefect.venv.prefect, ['worker', 'start', '--type', 'process', '--pool', pool], {
    cwd: home,
    env,
    group: true,
    logFile: join(TMP, `worker-${pool}.log`),
    readyWhen: line => /started!/i.test(line),
    timeoutMs: 120_000
  })
  return {
    child,
    home,
    async stop () {
      await child.stop()
      rmSync(home, { recursive: true, force: true })
    }
  }
}

/** The run's state history, oldest first. */
export function states (prefect: RealPrefect, flowRunId: string): Promise<State[]> {
  return prefect.fixtures.readStates(flowRunId)
}

/** Waits until the run has left Scheduled-type states (Pending or beyond); returns its history. */
export async function waitForPending (prefect: RealPrefect, flowRunId: string, timeoutMs: number): Promise<State[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const history = await states(prefect, flowRunId)
    if (history.some(s => s.type === 'PENDING')) return history
    if (Date.now() > deadline) throw new Error(`flow run ${flowRunId} was not Pending within ${timeoutMs} ms (${history.map(s => s.name).join(' → ')})`)
    await sleep(250)
  }
}

/** ms between the run's first Pending state and the Scheduled state before it (state timestamps). */
export function pendingMinusScheduledMs (history: State[]): number {
  const pending = history.find(s => s.type === 'PENDING')
  const scheduled = history.filter(s => s.type === 'SCHEDULED' && pending !== undefined && s.timestamp <= pending.timestamp).at(0)
  if (pending === undefined || scheduled === undefined) return Number.NaN
  return Date.parse(pending.timestamp) - Date.parse(scheduled.timestamp)
}

/** ms between the run's first Pending state and the time it was scheduled for. */
export function pendingMinusScheduledTimeMs (history: State[]): number {
  const pending = history.find(s => s.type === 'PENDING')
  const scheduled = history.find(s => s.type === 'SCHEDULED')
  const when = scheduled?.state_details?.scheduled_time
  if (pending === undefined || when === undefined || when === null) return Number.NaN
  return Date.parse(pending.timestamp) - Date.parse(when)
}
