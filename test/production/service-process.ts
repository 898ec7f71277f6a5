// A pushpool server as a real child process on a free loopback port, as production runs it: env in,
// ready when GET /readyz answers 200, stopped with SIGTERM. Its output is kept for failure messages.
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { findFreePort } from '../../src/devstack/prefect-server.ts'

export interface ServiceProcess {
  url: string
  /** Everything it printed so far, stdout and stderr interleaved. */
  output: () => string
  /** SIGTERM, then the exit: its code and how long it took. */
  stop: () => Promise<{ code: number | null, signal: NodeJS.Signals | null, ms: number }>
  /** SIGKILL: the process dies where it stands, as a crashed or evicted instance does. */
  kill: () => Promise<void>
}

export interface ServiceOptions {
  /** Arguments to `node`, e.g. ['src/server.ts']. */
  args: string[]
  cwd?: string
  /** The whole environment (PORT is added); see `parentEnv` for the usual base. */
  env: Record<string, string | undefined>
  /** Default 60 s: a cold start loads the Google clients, and CI machines run many tests at once. */
  readyTimeoutMs?: number
  /** The loopback port to listen on, for a server that must know its URL first; a free one by default. */
  port?: number
  /** Run as this user and group (needs root), e.g. an image's non-root user. */
  uid?: number
  gid?: number
}

/** This process's environment without any PREFECT_ or PUSHPOOL_ setting that would leak into a child's config. */
export function parentEnv (): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(PREFECT_|PUSHPOOL_)/.test(key)))
}

export async function startService (t: Test, options: ServiceOptions): Promise<ServiceProcess> {
  const port = options.port ?? await findFreePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, options.args, {
    cwd: options.cwd,
    // Coverage of a child is tap's business only for code under test in this process.
    env: { ...options.env, PORT: String(port), _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {})
  })
  let output = ''
  const collect = (chunk: Buffer): void => { output += chunk.toString('utf8') }
  child.stdout.on('data', collect)
  child.stderr.on('data', collect)
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve =>
    child.once('exit', (code, signal) => resolve({ code, signal })))
  let running = true
  void exited.then(() => { running = false })

  const stop = async (): Promise<{ code: number | null, signal: NodeJS.Signals | null, ms: number }> => {
    const started = Date.now()
    if (running) child.kill('SIGTERM')
    const result = await exited
    return { ...result, ms: Date.now() - started }
  }
  const kill = async (): Promise<void> => {
    if (running) child.kill('SIGKILL')
    await exited
  }
  t.teardown(async () => { if (running) await stop() })

  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000
  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    if (!running) throw new Error(`the server exited before it was ready:\n${output}`)
    const status = await fetch(`${url}/readyz`).then(async res => { await res.arrayBuffer(); return res.status }, () => 0)
    if (status === 200) break
    if (Date.now() > deadline) throw new Error(`the server was not ready within ${readyTimeoutMs} ms:\n${output}`)
    await sleep(100)
  }
  return { url, output: () => output, stop, kill }
}

/** What the artifact's server said of its code cache at start (src/server.ts logs it once), from its output. */
export function codeCacheStates (output: string): string[] {
  return output.split('\n').filter(line => line.includes('"codeCache"')).map(line => (JSON.parse(line) as { codeCache: string }).codeCache)
}
