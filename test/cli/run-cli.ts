// Runs `node src/cli.ts ...` as a child process, the way a user does, with an environment holding
// only what the test passes (plus PATH and HOME), so a PREFECT_* or PUSHPOOL_* variable of the
// developer's shell cannot change the outcome.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export function runCli (args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const inherited = Object.fromEntries(Object.entries(process.env)
    .filter(([key]) => !key.startsWith('PREFECT_') && !key.startsWith('PUSHPOOL_')))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // tap instruments child node processes for coverage; these are not worth the start-up cost.
      env: { ...inherited, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env }
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8') })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
    child.once('error', reject)
    child.once('close', code => { resolve({ code, stdout, stderr }) })
  })
}
