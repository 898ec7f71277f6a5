// `npm run compat`: the Prefect compatibility matrix. For the pinned Prefect and for the oldest
// release pushpool supports, each in its own virtualenv installed from PyPI (src/devstack/venv.ts):
//   - the conformance suite, with that release's server code judging the job variables (pushpool
//     validates as the server does; it renders as the pinned worker does, whatever the server);
//   - an end-to-end smoke: test/e2e/flow-run.test.ts against that release's server, the flow run
//     executed in the emulator by that release's `prefect flow-run execute`, to Completed.
// Prints one line per release and exits non-zero unless every cell passes.
//
// Why Prefect 3.1.8 is the oldest: it is the first release whose server takes
// PREFECT_SERVER_API_AUTH_STRING (basic auth, PrefectHQ/prefect#16408), the credential pushpool
// is set up with (docs/deploy.md); everything else pushpool asks of the server is older: the REST
// routes of src/prefect/client.ts, flow-run job_variables, automations with call-webhook and the
// flow-run state events they match, get_scheduled_flow_runs' concurrency accounting (all 3.0),
// and the job-variable validation pushpool repeats at dispatch (prefect/server/api/validation.py
// and schema_tools, unchanged from 3.1.8 to the pinned release but for an SSRF fix and a fix for
// a block title that differs from its key). Submitting states (3.6.22) are not used.
// Infrastructure-bound flows need the server to store a pool's storage configuration and the
// client to submit them (3.4.10 and newer): a feature of those releases, not a floor for pushpool.
// Measured on a 2-core machine at load ~17: 4 min 27 s in all, building the oldest release's
// virtualenv from PyPI included (the pinned one existed); conformance and smoke took 79 s for the
// pinned release and 68 s for the oldest. A virtualenv is built once and reused while its pins hold.

import { spawn } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensurePrefectVenv, oldestVenvDir, OLDEST_PREFECT_PACKAGES, type PrefectVenv } from '../src/devstack/venv.ts'
import { runConformance } from '../test/conformance/harness.ts'
import { describeVersions, summarize } from '../test/conformance/summary.ts'
import { TEST_ENV } from '../test/harness/test-env.ts'

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SMOKE_TEST = 'test/e2e/flow-run.test.ts'
const SMOKE_TIMEOUT_SECONDS = 900

interface Release {
  label: string
  venv: PrefectVenv
  /** Judges the job variables; the pinned release judges its own. */
  server?: PrefectVenv
}

interface Cell {
  ok: boolean
  line: string
  output: string[]
}

const say = (line: string): void => { process.stdout.write(`${line}\n`) }
const progress = (label: string) => (line: string): void => { say(`  [${label} venv] ${line}`) }

const pinned = await ensurePrefectVenv({ onProgress: progress('pinned') })
const oldest = await ensurePrefectVenv({ dir: oldestVenvDir(), packages: [...OLDEST_PREFECT_PACKAGES], onProgress: progress('oldest') })
const releases: Release[] = [
  { label: 'pinned', venv: pinned },
  { label: 'oldest supported', venv: oldest, server: oldest }
]

const rows: string[] = []
let allOk = true
for (const release of releases) {
  const started = Date.now()
  const report = await runConformance({ serverVenv: release.server })
  const summary = summarize(report)
  const conformance: Cell = { ok: summary.ok, line: summary.verdict, output: summary.lines }
  const smoke = await runSmoke(release.venv)
  const seconds = Math.round((Date.now() - started) / 1000)
  const row = `${release.label.padEnd(17)} ${describeVersions(report).padEnd(36)} ${mark(conformance)} ${conformance.line.padEnd(36)} ${mark(smoke)} ${smoke.line} (${seconds} s)`
  rows.push(row)
  say(row)
  for (const cell of [conformance, smoke]) {
    if (!cell.ok) for (const line of cell.output) say(`    ${line}`)
  }
  allOk &&= conformance.ok && smoke.ok
}

say('\nPrefect compatibility matrix')
for (const row of rows) say(row)
process.exitCode = allOk ? 0 : 1

function mark (cell: Cell): string {
  return cell.ok ? '✓' : '✗'
}

/** The e2e smoke against a server from `venv`, its flow runs executed by the same venv's prefect. */
async function runSmoke (venv: PrefectVenv): Promise<Cell> {
  const env: NodeJS.ProcessEnv = { ...process.env, [TEST_ENV.venv]: venv.dir }
  // Its own server from this venv, not one a surrounding test run may be sharing.
  delete env[TEST_ENV.apiUrl]
  delete env[TEST_ENV.authString]
  const output: string[] = []
  const code = await new Promise<number | null>((resolvePromise, reject) => {
    const child = spawn(join(REPO_ROOT, 'node_modules', '.bin', 'tap'), [SMOKE_TEST, '--disable-coverage', '-t', String(SMOKE_TIMEOUT_SECONDS)],
      { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const collect = (chunk: Buffer): void => { output.push(...chunk.toString('utf8').split('\n')) }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    child.once('error', reject)
    child.once('close', resolvePromise)
  })
  // tap's closing summary looks like "# { total: 8, pass: 8 }".
  const summary = output.find(line => /^# \{ total: \d+/.test(line)) ?? '# no summary'
  return { ok: code === 0, line: `smoke ${SMOKE_TEST}: ${summary.replace(/^# /, '')}`, output: output.slice(-80) }
}
