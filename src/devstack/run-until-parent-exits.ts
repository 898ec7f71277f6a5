// Usage: node run-until-parent-exits.ts [--remove-after <dir>] <command> [args...]
//
// Runs a command and stops it when this process's stdin reaches end-of-file. The parent spawns us
// with a stdin pipe it never writes to; the kernel closes that pipe however the parent ends (even
// SIGKILL or a tap timeout), so the command cannot outlive the parent. SIGTERM/SIGINT/SIGHUP are
// passed on as one SIGTERM (a second signal can make uvicorn abandon its graceful shutdown). After
// the command exits, the --remove-after directory (the server's scratch PREFECT_HOME) is deleted,
// and we exit with the command's status. Start it detached (as a process-group leader): if the
// command ignores SIGTERM for too long, the whole group is killed.

import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { constants } from 'node:os'

// After this long the whole process group (us included) is killed outright.
const GRACE_MS = 15_000

const argv = process.argv.slice(2)
let removeAfter: string | undefined
if (argv[0] === '--remove-after') {
  removeAfter = argv[1]
  argv.splice(0, 2)
}
const [command, ...args] = argv
if (!command) {
  process.stderr.write('usage: run-until-parent-exits [--remove-after <dir>] <command> [args...]\n')
  process.exit(2)
}

const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] })

let stopping = false
function stop (): void {
  if (stopping) return
  stopping = true
  child.kill('SIGTERM')
  setTimeout(() => process.kill(-process.pid, 'SIGKILL'), GRACE_MS).unref()
}

process.stdin.on('end', stop)
process.stdin.on('error', stop)
process.stdin.resume()
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, stop)

child.on('error', (err) => {
  process.stderr.write(`run-until-parent-exits: cannot run ${command}: ${err.message}\n`)
  cleanUp()
  process.exit(127)
})

child.on('exit', (code, signal) => {
  cleanUp()
  process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0))
})

function cleanUp (): void {
  if (removeAfter) rmSync(removeAfter, { recursive: true, force: true })
}
