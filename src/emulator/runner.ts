// Runs one task of an execution as a local child process, the way a container would run: no shell,
// its own process group (so a timeout or cancel takes down everything it started), output captured.
import { spawn, type ChildProcess } from 'node:child_process'
import { constants } from 'node:os'

export type ProcessEnd = { exitCode: number } | { timeout: true } | { startError: string }

export type OutputStream = 'stdout' | 'stderr'

export interface TaskProcessSpec {
  argv: string[]
  env: Record<string, string>
  timeoutMs: number
  /** Each line the process writes, as it is written (the last, unterminated one when the stream ends). */
  onLine?: (stream: OutputStream, text: string) => void
}

const LOG_LIMIT_BYTES = 256 * 1024
/** Cloud Logging takes entries up to 256 KB; a longer line is cut into entries of this size. */
const LINE_LIMIT_BYTES = 256 * 1024
/** Cloud Run sends SIGTERM and waits before SIGKILL; a short grace keeps tests and demos snappy. */
const KILL_GRACE_MS = 3000
const MAX_TIMER_MS = 2 ** 31 - 1

export class TaskProcess {
  readonly #child: ChildProcess
  readonly #onEnd: (end: ProcessEnd) => void
  readonly #logs = new LogTail(LOG_LIMIT_BYTES)
  readonly #timeoutTimer: NodeJS.Timeout
  #killTimer: NodeJS.Timeout | undefined
  #timedOut = false
  #exitCode: number | undefined
  /** Set once onEnd has been called, or once the owner no longer wants to hear about the end. */
  #settled = false

  constructor (spec: TaskProcessSpec, onEnd: (end: ProcessEnd) => void) {
    this.#onEnd = onEnd
    const [command, ...args] = spec.argv
    this.#child = spawn(command, args, { env: spec.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    for (const stream of ['stdout', 'stderr'] as const) {
      const lines = new LineSplitter(text => spec.onLine?.(stream, text))
      this.#child[stream]?.on('data', (chunk: Buffer) => {
        this.#logs.append(chunk)
        lines.push(chunk)
      })
      this.#child[stream]?.on('end', () => lines.flush())
    }
    this.#child.on('error', error => {
      if (this.#child.pid === undefined) this.#end({ startError: error.message })
    })
    this.#child.on('exit', (code, signal) => {
      clearTimeout(this.#timeoutTimer)
      clearTimeout(this.#killTimer)
      this.#exitCode = code ?? 128 + (signal ? constants.signals[signal] : 0)
      // The container is gone once its main process exits; so is anything it left running.
      this.#signalGroup('SIGKILL')
    })
    // 'close' comes after 'exit' once stdout/stderr are drained, so logs() is complete when onEnd runs.
    this.#child.on('close', () => {
      this.#end(this.#timedOut ? { timeout: true } : { exitCode: this.#exitCode ?? 0 })
    })
    this.#timeoutTimer = setTimeout(() => {
      this.#timedOut = true
      this.#terminate()
    }, Math.min(spec.timeoutMs, MAX_TIMER_MS))
  }

  logs (): string {
    return this.#logs.toString()
  }

  /** Ends the process without reporting: its owner has already decided the outcome (cancel, delete, close). */
  abandon (graceful: boolean): void {
    this.#settled = true
    if (graceful) this.#terminate()
    else this.#signalGroup('SIGKILL')
  }

  /** SIGTERM now, SIGKILL after a grace period, as Cloud Run stops a task. */
  #terminate (): void {
    this.#signalGroup('SIGTERM')
    this.#killTimer ??= setTimeout(() => this.#signalGroup('SIGKILL'), KILL_GRACE_MS)
  }

  #end (end: ProcessEnd): void {
    clearTimeout(this.#timeoutTimer)
    clearTimeout(this.#killTimer)
    if (this.#settled) return
    this.#settled = true
    this.#onEnd(end)
  }

  #signalGroup (signal: NodeJS.Signals): void {
    if (this.#child.pid === undefined) return
    // Once the main process has exited, only the clean-up SIGKILL of what it left behind is still due.
    if (this.#exitCode !== undefined && signal !== 'SIGKILL') return
    try {
      process.kill(-this.#child.pid, signal)
    } catch {
      // ESRCH: the group is already gone.
    }
  }
}

/** Cuts a byte stream into lines (\n or \r\n), decoding each whole line as UTF-8. */
class LineSplitter {
  readonly #emit: (text: string) => void
  #pending: Buffer = Buffer.alloc(0)

  constructor (emit: (text: string) => void) {
    this.#emit = emit
  }

  push (chunk: Buffer): void {
    let data = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk
    for (let newline = data.indexOf(10); newline !== -1; newline = data.indexOf(10)) {
      const end = newline > 0 && data[newline - 1] === 13 ? newline - 1 : newline
      this.#emit(data.subarray(0, end).toString('utf8'))
      data = data.subarray(newline + 1)
    }
    while (data.length > LINE_LIMIT_BYTES) {
      this.#emit(data.subarray(0, LINE_LIMIT_BYTES).toString('utf8'))
      data = data.subarray(LINE_LIMIT_BYTES)
    }
    this.#pending = Buffer.from(data)
  }

  flush (): void {
    if (this.#pending.length) this.#emit(this.#pending.toString('utf8'))
    this.#pending = Buffer.alloc(0)
  }
}

/** Keeps the last `limit` bytes of interleaved stdout/stderr. */
class LogTail {
  readonly #limit: number
  #chunks: Buffer[] = []
  #bytes = 0

  constructor (limit: number) {
    this.#limit = limit
  }

  append (chunk: Buffer): void {
    this.#chunks.push(chunk)
    this.#bytes += chunk.length
    while (this.#bytes > this.#limit) {
      const excess = this.#bytes - this.#limit
      const first = this.#chunks[0]
      if (first.length <= excess) {
        this.#chunks.shift()
        this.#bytes -= first.length
      } else {
        this.#chunks[0] = first.subarray(excess)
        this.#bytes -= excess
      }
    }
  }

  toString (): string {
    return Buffer.concat(this.#chunks).toString('utf8')
  }
}
