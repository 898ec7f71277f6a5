// Helper processes the bench starts and stops by their own pid: the Prefect stand-in, the Cloud Run
// emulator (`src/emulator/main.ts`) and Prefect's worker. Each prints a JSON line (or a known log
// line) once it is ready.
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { lineSplitter } from '../src/devstack/lines.ts'

export interface Child {
  pid: number
  process: ChildProcess
  /** The first JSON line printed on stdout, if waited for. */
  info: any
  stop (): Promise<void>
}

export interface SpawnOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Resolve once a stdout/stderr line matches; by default, once stdout prints a JSON object. */
  readyWhen?: (line: string) => boolean
  logFile?: string
  timeoutMs?: number
  /** Start the child as the leader of its own process group, and stop the whole group. */
  group?: boolean
}

export async function spawnChild (command: string, args: string[], options: SpawnOptions = {}): Promise<Child> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: options.group ?? false
  })
  const log = options.logFile !== undefined ? createWriteStream(options.logFile, { flags: 'a' }) : null
  let info: any = null
  let exited: string | null = null
  const tail: string[] = []
  const exit = new Promise<void>(resolve => child.once('exit', (code, signal) => { exited = `${code ?? signal}`; resolve() }))
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} ${args.join(' ')} not ready after ${options.timeoutMs ?? 60_000} ms:\n${tail.join('\n')}`)),
      options.timeoutMs ?? 60_000)
    const onLine = (stream: 'out' | 'err') => (line: string): void => {
      log?.write(`${line}\n`)
      tail.push(line)
      if (tail.length > 40) tail.shift()
      const matched = options.readyWhen !== undefined
        ? options.readyWhen(line)
        : stream === 'out' && line.startsWith('{') && (() => { try { info = JSON.parse(line); return true } catch { return false } })()
      if (matched) { clearTimeout(timer); resolve() }
    }
    child.stdout?.on('data', lineSplitter(onLine('out')))
    child.stderr?.on('data', lineSplitter(onLine('err')))
    void exit.then(() => { clearTimeout(timer); reject(new Error(`${command} exited (${exited}) before it was ready:\n${tail.join('\n')}`)) })
  })
  await ready
  const pid = child.pid as number
  return {
    pid,
    process: child,
    info,
    async stop () {
      if (exited === null) {
        const signal = (sig: NodeJS.Signals): void => {
          try { if (options.group === true) process.kill(-pid, sig); else child.kill(sig) } catch { /* gone */ }
        }
        signal('SIGTERM')
        const timer = setTimeout(() => signal('SIGKILL'), 15_000)
        await exit
        clearTimeout(timer)
        // A worker's flow-run subprocesses share its group; make sure none outlives it.
        if (options.group === true) signal('SIGKILL')
      }
      log?.end()
    }
  }
}
