// The V8 code cache of the server script (dist/server-script-<hash>.js), written at build time after a
// training run, so that a new instance deserializes the code its start-up and first dispatch run
// instead of compiling it (src/artifact/script.ts says why). The training runs the script as the
// image does, in a child process with the same NODE_OPTIONS (V8 rejects a cache made under other
// flags): it starts the server on loopback with a throwaway SQLite store and timers on Cloud Tasks
// (the deployed setting), asks /readyz and /healthz, and posts two webhooks against the training's
// peers (scripts/code-cache-peers.ts: a Prefect stand-in and the emulator): one for a flow run due
// now, which the server takes through a whole dispatch to a launched execution, and one for a run
// due in a few seconds, which waits for its timer, a Cloud Tasks task that the emulator delivers to
// the timer route with an OIDC token, which drives it. Then it takes the cache. Code that only
// other paths run (a failure's, TLS to Google, reconcile) is compiled on first use, as before.
//
// The cache only saves compiling. V8 checks it against its own version and flags and the script's
// length, not the script's content, and compiles as usual if it does not match; the script's name
// carries a hash of its content and the cache is named after it (scripts/build.ts), so a cache never
// meets another build's script. It is a plain file, readable by any user.
//
//   node scripts/code-cache.ts [--dist dist]
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadScript } from '../src/artifact/script.ts'
import { findFreePort } from '../src/devstack/prefect-server.ts'

/** The server script's name in dist/, before its hash (scripts/build.ts; the server's entry loads it). */
export const SERVER_SCRIPT = 'server-script'

/** Whether a file of dist/ is the server script. */
export function isServerScript (file: string): boolean {
  return file.startsWith(`${SERVER_SCRIPT}-`) && file.endsWith('.js')
}

/** The code cache's file beside a server script: named after it, so after the script's content. */
export function codeCacheOf (script: string): string {
  return script.replace(/\.js$/, '.cache')
}

/** The server script of `dist` (the one a build left there). */
export function serverScriptIn (dist: string): string {
  const scripts = readdirSync(dist).filter(isServerScript)
  if (scripts.length !== 1) throw new Error(`${dist} has ${scripts.length} server scripts (${scripts.join(', ')}): build it anew (scripts/build.ts)`)
  return scripts[0]
}

interface ServerScript {
  main: (env: NodeJS.ProcessEnv) => Promise<void>
}

const TRAINING_SECRET = 'code-cache-training-secret-0123456789'
/** How far ahead the timed run is scheduled: the webhook must have armed its timer before then. */
const TIMED_RUN_AHEAD_MS = 4000

/**
 * Trains the server script of `dist` in a child process and writes its cache; returns the cache's
 * size in bytes. `env`: more environment for the training process.
 */
export function writeServerCodeCache (dist: string, env: Record<string, string> = {}): number {
  const directory = resolve(dist)
  const script = serverScriptIn(directory)
  const cache = join(directory, codeCacheOf(script))
  rmSync(cache, { force: true })
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--train', join(directory, script)], {
    cwd: directory,
    // The server's V8 flags are the image's NODE_OPTIONS (the cache is checked against them).
    env: { PATH: process.env.PATH ?? '', HOME: directory, NODE_OPTIONS: process.env.NODE_OPTIONS ?? '', ...env },
    // The server's own log lines are the training's noise; its errors are the build's.
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 120_000
  })
  if (child.status !== 0) throw new Error(`training the server script's code cache failed (${child.status ?? child.signal}):\n${child.stderr}`)
  chmodSync(cache, 0o644)
  return statSync(cache).size
}

/** Posts the webhook for a flow run to the server at `url`; fails unless its dispatch is then in `state`. */
async function webhookFor (url: string, flowRunId: string, state: string): Promise<void> {
  const webhook = await fetch(`${url}/v1/webhooks/prefect`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TRAINING_SECRET}`, 'content-type': 'application/json' },
    body: JSON.stringify({ event_id: crypto.randomUUID(), event: 'prefect.flow-run.Scheduled', occurred: new Date().toISOString(), resource_id: `prefect.flow-run.${flowRunId}` })
  })
  const reply = await webhook.json() as { state?: string }
  if (webhook.status !== 202 || reply.state !== state) throw new Error(`a training webhook answered ${webhook.status} ${JSON.stringify(reply)}, not a dispatch ${state}`)
}

/** Runs the server script at `file` through the training and writes its cache beside it. */
async function train (file: string): Promise<void> {
  const { exports, script } = loadScript<ServerScript>(file, null)
  // Imported here, in the training's own process: the build and the tests that import this file
  // need none of the peers' modules (the emulator, the Cloud Tasks client).
  const { startTrainingPeers } = await import('./code-cache-peers.ts')
  const peers = await startTrainingPeers()
  const port = await findFreePort()
  const data = mkdtempSync(join(tmpdir(), 'pushpool-code-cache-'))
  const url = `http://127.0.0.1:${port}`
  const { queue, invoker, tasksEndpoint, certsUrl } = peers.timers
  try {
    await exports.main({
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      PUSHPOOL_STORE_URL: `sqlite:${join(data, 'pushpool.db')}`,
      PUSHPOOL_WEBHOOK_SECRETS: TRAINING_SECRET,
      PREFECT_API_URL: peers.prefectApiUrl,
      PUSHPOOL_POOLS: peers.pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: peers.cloudRunEndpoint,
      PUSHPOOL_TIMERS: 'cloud-tasks',
      PUSHPOOL_TASKS_QUEUE: queue,
      PUSHPOOL_TASKS_INVOKER: invoker,
      PUSHPOOL_TASKS_ENDPOINT: tasksEndpoint,
      PUSHPOOL_AUDIENCE: url,
      PUSHPOOL_GOOGLE_CERTS_URL: certsUrl,
      PUSHPOOL_PREFETCH_SECONDS: '0'
    })
    for (const probe of ['/readyz', '/healthz']) {
      const res = await fetch(url + probe)
      if (res.status !== 200) throw new Error(`${probe} answered ${res.status} during the training run`)
      await res.arrayBuffer()
    }
    // A dispatch that stopped short would leave the cache without the code that follows: the build says so.
    await webhookFor(url, peers.newFlowRun(), 'launched')
    await webhookFor(url, peers.newFlowRun(new Date(Date.now() + TIMED_RUN_AHEAD_MS)), 'deferred')
    const fired = await peers.timersDelivered()
    if (fired !== 1 || peers.executions() !== 2) throw new Error(`the training's timer was delivered ${fired} times and left ${peers.executions()} executions, not 1 and 2`)
    writeFileSync(codeCacheOf(file), script.createCachedData())
  } finally {
    rmSync(data, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { dist: { type: 'string', default: 'dist' }, train: { type: 'string' } } })
  if (values.train !== undefined) {
    await train(values.train)
    // The server and the peers are still listening: the cache is written, so the process ends here.
    process.exit(0)
  }
  const started = performance.now()
  const bytes = writeServerCodeCache(values.dist!)
  process.stdout.write(`code cache of the server script: ${Math.round(bytes / 1024)} kB in ${Math.round(performance.now() - started)} ms\n`)
}
