// Runs one of scripts/*.ts as a child process, as `npm run <script>` would, and collects what it
// printed. Coverage is off in the child: tap would otherwise instrument the whole script run.
import { spawn } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

export interface ScriptRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `scripts/<script>` with `args`; sends SIGTERM if it is still running after `hardLimitMs`. */
export async function runScript (script: string, args: string[], hardLimitMs: number): Promise<ScriptRun> {
  const child = spawn(process.execPath, [join(REPO, 'scripts', script), ...args], {
    cwd: REPO,
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8') })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
  const timer = setTimeout(() => child.kill('SIGTERM'), hardLimitMs)
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}
