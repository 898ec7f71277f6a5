// The guard that keeps a Prefect server from outliving the process that started it, tried on a
// stand-in command so it costs no server start.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const GUARD = fileURLToPath(new URL('../../src/devstack/run-until-parent-exits.ts', import.meta.url))

// Prints its pid, then sleeps far longer than any test.
const SLEEPER = ['-e', 'console.log(process.pid); setTimeout(() => {}, 600_000)']

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function startGuarded (extraArgs: string[] = []) {
  const guard = spawn(process.execPath, [GUARD, ...extraArgs, process.execPath, ...SLEEPER],
    { detached: true, stdio: ['pipe', 'pipe', 'inherit'] })
  const [firstChunk] = await once(guard.stdout, 'data') as [Buffer]
  return { guard, commandPid: Number(firstChunk.toString().trim()) }
}

async function waitUntilGone (pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && isRunning(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  return !isRunning(pid)
}

t.test('closing its stdin (the parent going away) ends the command and removes the directory', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'pushpool-guard-'))
  const { guard, commandPid } = await startGuarded(['--remove-after', scratch])
  t.ok(isRunning(commandPid))

  guard.stdin.end()
  const [code, signal] = await once(guard, 'exit') as [number | null, string | null]
  t.equal(signal, null)
  t.equal(code, 128 + 15, 'exits as the command did: by SIGTERM')
  t.ok(await waitUntilGone(commandPid), 'the command is gone')
  t.notOk(existsSync(scratch), 'the directory is gone')
})

t.test('SIGTERM to the guard is passed on to the command', async (t) => {
  const { guard, commandPid } = await startGuarded()
  t.teardown(() => { guard.stdin.end() })
  guard.kill('SIGTERM')
  const [code] = await once(guard, 'exit') as [number | null]
  t.equal(code, 128 + 15)
  t.ok(await waitUntilGone(commandPid))
})

t.test('a command that cannot be started is reported', async (t) => {
  const guard = spawn(process.execPath, [GUARD, '/nonexistent/prefect'], { stdio: ['pipe', 'ignore', 'pipe'] })
  let stderr = ''
  guard.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(guard, 'exit') as [number | null]
  t.equal(code, 127)
  t.match(stderr, /cannot run \/nonexistent\/prefect: spawn \/nonexistent\/prefect ENOENT/)
})
