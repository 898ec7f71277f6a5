// `npm run demo -- --exit` as CI runs it: the whole push pool offline, five runs driven by
// Prefect's own automation, and exit 0 only when each ended as expected.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))

t.test('pushpool demo --exit brings the stack up, runs every scenario and exits 0', async t => {
  const child = spawn(process.execPath, [CLI, 'demo', '--exit'], {
    // A child under tap reports no coverage of its own; its files load differently.
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  t.equal(code, 0, output.slice(-3000))
  for (const scenario of ['completes', 'fails', 'crashes', 'scheduled', 'cancelled']) {
    t.match(output, new RegExp(`✓\\s+${scenario}\\s`), `${scenario} ended as expected`)
  }
  t.match(output, /every run ended as expected/)
  t.match(output, /create\s+automation pushpool-demo: dispatch/, 'the demo ran pushpool setup')
  t.match(output, /stopping everything the demo started/)
})

t.test('pushpool demo rejects unknown options with exit 2', async t => {
  const child = spawn(process.execPath, [CLI, 'demo', '--bogus'], { env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  t.equal(code, 2)
  t.match(stderr, /unknown option --bogus/)
})
