// `npm run demo -- --exit` as CI runs it: the whole push pool offline, five runs driven by
// Prefect's own automation, and exit 0 only when each ended as expected. And `npm run demo`
// stopped as a script stops it (`kill -INT $!` on npm's process): the whole stack goes.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
const REPO = fileURLToPath(new URL('../..', import.meta.url))
// A child under tap reports no coverage of its own; its files load differently.
const CHILD_ENV = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }

t.test('pushpool demo --exit brings the stack up, runs every scenario and exits 0', async t => {
  const child = spawn(process.execPath, [CLI, 'demo', '--exit'], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  t.equal(code, 0, output.slice(-3000))
  for (const scenario of ['completes', 'fails', 'crashes', 'scheduled', 'cancelled']) {
    t.match(output, new RegExp(`✓\\s+${scenario}\\s.*\\s-?\\d+\\.\\d\\d s$`, 'm'), `${scenario} ended as expected, with its launch latency`)
  }
  t.match(output, /every run ended as expected/)
  t.match(output, /The crashes run in Prefect: Crashed: Flow run infrastructure exited with non-zero status code 3\./, 'the crash names its exit code')
  t.match(output, /\[stderr\] ImportError: cannot import name flow from hello/, 'and the container\'s stderr line is in the run\'s Prefect logs')
  t.match(output, /create\s+automation pushpool-demo: dispatch/, 'the demo ran pushpool setup')
  t.match(output, /stopping everything the demo started\n• stopped in \d+\.\d s/)
  // What is gone once it exits is not offered.
  t.notMatch(output, /Prefect UI|curl |pushpool log|\.log\b/, 'no UI, admin API or log to visit after --exit')
  t.match(output, /without --exit to keep it running/)
})

t.test('SIGINT to npm run demo stops the whole stack and ends npm by the signal', async t => {
  const started = Date.now()
  // npm as a user runs it; `exec` in the script makes npm's child the demo itself.
  const npm = spawn('npm', ['run', '--silent', 'demo'], { cwd: REPO, env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const upAndRunning = new Promise<void>(resolve => {
    const collect = (chunk: Buffer): void => {
      output += chunk.toString()
      if (output.includes('triggering one run per scenario')) resolve()
    }
    npm.stdout.on('data', collect)
    npm.stderr.on('data', collect)
  })
  const exited = new Promise<[number | null, NodeJS.Signals | null]>(resolve => npm.once('exit', (code, signal) => resolve([code, signal])))
  await Promise.race([upAndRunning, exited])
  const workDir = /working directory (\S+)/.exec(output)?.[1]
  const prefectPort = /Prefect server up at http:\/\/127\.0\.0\.1:(\d+)\/api/.exec(output)?.[1]
  t.ok(workDir !== undefined && prefectPort !== undefined, `the stack came up in ${Date.now() - started} ms`)
  if (workDir === undefined || prefectPort === undefined) t.comment(output.slice(-1500))

  const interrupted = Date.now()
  npm.kill('SIGINT')
  const [code, signal] = await exited
  const stopMs = Date.now() - interrupted
  t.comment(`npm run demo ended ${stopMs} ms after SIGINT`)
  t.equal(signal, 'SIGINT', `npm ended by the signal (code ${code}), as an interrupted command does`)
  t.ok(stopMs < 20_000, `within 20 s (${stopMs} ms)`)
  t.match(output, /SIGINT: stopping everything the demo started\n• stopped in \d+\.\d s/)
  t.notOk(existsSync(workDir ?? '/'), 'its working directory is removed')
  t.notOk(await answers(`http://127.0.0.1:${prefectPort}/api/health`), 'the Prefect server is stopped')
  t.same(await processesMentioning([workDir ?? '', `--port ${prefectPort}`]), [], 'no process of the stack is left')
})

async function answers (url: string): Promise<boolean> {
  return await fetch(url, { signal: AbortSignal.timeout(2000) }).then(async res => { await res.arrayBuffer(); return true }, () => false)
}

/** Live processes whose command line or environment contains any of `needles` (Linux /proc). */
async function processesMentioning (needles: string[]): Promise<string[]> {
  const found: string[] = []
  for (const pid of (await readdir('/proc')).filter(name => /^\d+$/.test(name))) {
    const read = async (file: string): Promise<string> => (await readFile(`/proc/${pid}/${file}`).catch(() => Buffer.alloc(0))).toString().replaceAll('\0', ' ')
    const [cmdline, environ] = await Promise.all([read('cmdline'), read('environ')])
    if (needles.some(needle => cmdline.includes(needle) || environ.includes(needle))) found.push(`${pid}: ${cmdline.slice(0, 200)}`)
  }
  return found
}

t.test('pushpool demo rejects unknown options with exit 2', async t => {
  const child = spawn(process.execPath, [CLI, 'demo', '--bogus'], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  t.equal(code, 2)
  t.match(stderr, /unknown option --bogus/)
})
