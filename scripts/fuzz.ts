// `npm run fuzz [-- --max-examples N]`: schemathesis (from PyPI, in its own venv, .venv-fuzz) against
// openapi.yaml on a running pushpool: every route, each with the auth its security scheme names
// (webhook secret, admin token), and the three checks the issue asks for: not_a_server_error,
// status_code_conformance and response_schema_conformance. No check is excluded.
//
// pushpool runs as production does (`node src/server.ts`, SQLite ledger) and points at a real
// Prefect server (run-with-peers' when its env is set, else one started here) with one served pool,
// a deployment, a few launched dispatches and the Cloud Run emulator, so the webhook path reaches
// Prefect and the admin routes have records to read.
//
// It prints `fuzz: failed <operation>: <schemathesis codes>` per failing operation, then
// `fuzz: requests=N operations=N statuses={…} failures=N`, and exits non-zero on any failure or
// when fewer requests than --min-requests (default 2000) were made.
//
//   node scripts/fuzz.ts                      the full run: 400 examples per operation and phase
//   node scripts/fuzz.ts --max-examples 40 --min-requests 300     the CI size
//   node scripts/fuzz.ts --install-only       create .venv-fuzz and install schemathesis only
//   node scripts/fuzz.ts --seed N             replay a run (its seed is printed)

import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEmulator } from '../src/emulator/index.ts'
import { findFreePort, startPrefectServer } from '../src/devstack/prefect-server.ts'
import { ensurePrefectVenv } from '../src/devstack/venv.ts'
import { PrefectFixtures } from '../test/harness/prefect-fixtures.ts'
import { newTestAuthString, TEST_ENV } from '../test/harness/test-env.ts'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** Pinned, like the Prefect venv's packages: a new schemathesis may generate differently. */
export const SCHEMATHESIS = 'schemathesis==4.32.5'
const CHECKS = 'not_a_server_error,status_code_conformance,response_schema_conformance'

const { values: args } = parseArgs({
  options: {
    'max-examples': { type: 'string', default: '400' },
    'min-requests': { type: 'string', default: '2000' },
    seed: { type: 'string' },
    // One worker: with several, hypothesis's lambda-source cache races across threads and
    // schemathesis reports "AST constructor recursion depth mismatch" runtime errors.
    workers: { type: 'string', default: '1' },
    venv: { type: 'string', default: process.env.PUSHPOOL_FUZZ_VENV ?? join(REPO, '.venv-fuzz') },
    'keep-report': { type: 'boolean', default: false },
    /** Only create the venv (for CI's install step). */
    'install-only': { type: 'boolean', default: false }
  }
})

const say = (line: string): void => { process.stderr.write(`[fuzz] ${line}\n`) }
const cleanups: Array<() => Promise<void> | void> = []
const work = mkdtempSync(join(tmpdir(), 'pushpool-fuzz-'))

function run (command: string, argv: string[], options: { env?: NodeJS.ProcessEnv, cwd?: string, echo?: boolean } = {}): Promise<{ code: number | null, output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const collect = (chunk: Buffer): void => {
      output += chunk.toString('utf8')
      if (options.echo === true) process.stderr.write(chunk)
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    child.once('error', reject)
    child.once('close', code => resolve({ code, output }))
  })
}

/** The fuzzing venv: created with the system python and schemathesis installed once; reused after. */
export async function ensureFuzzVenv (dir: string): Promise<string> {
  const bin = join(dir, 'bin', 'schemathesis')
  const marker = join(dir, '.pushpool-fuzz')
  if (existsSync(bin) && existsSync(marker) && readFileSync(marker, 'utf8') === SCHEMATHESIS) return bin
  say(`installing ${SCHEMATHESIS} into ${dir}`)
  const python = process.env.PYTHON ?? 'python3'
  for (const [command, argv] of [[python, ['-m', 'venv', dir]], [join(dir, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', SCHEMATHESIS]]] as const) {
    const { code, output } = await run(command, [...argv], { env: { ...process.env, PIP_NO_INPUT: '1' } })
    if (code !== 0) throw new Error(`${command} ${argv.join(' ')} failed (${code}):\n${output.slice(-3000)}`)
  }
  writeFileSync(marker, SCHEMATHESIS)
  return bin
}

async function prefectPeer (): Promise<{ apiUrl: string, authString: string }> {
  const apiUrl = process.env[TEST_ENV.apiUrl]
  const authString = process.env[TEST_ENV.authString]
  if (apiUrl && authString) return { apiUrl, authString }
  say('starting a Prefect server (run-with-peers.ts passes its own otherwise)')
  const own = newTestAuthString()
  const server = await startPrefectServer({ venv: await ensurePrefectVenv(), authString: own })
  cleanups.push(() => server.stop())
  return { apiUrl: server.apiUrl, authString: own }
}

async function main (): Promise<number> {
  const maxExamples = Number(args['max-examples'])
  const minRequests = Number(args['min-requests'])
  const schemathesis = await ensureFuzzVenv(resolve(args.venv))
  if (args['install-only']) {
    process.stdout.write(`fuzz: ${SCHEMATHESIS} ready in ${resolve(args.venv)}\n`)
    return 0
  }
  const peers = await prefectPeer()
  const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
  const emulator = await startEmulator({ executions: 'hold' })
  cleanups.push(() => emulator.close())

  // A served pool with a deployment: webhooks for its runs go all the way to a launch.
  const { pool, deploymentId } = await prefect.servedPool('fuzz', 'proj-fuzz')

  const webhookSecret = `fuzz-webhook-${randomBytes(12).toString('hex')}`
  const adminToken = `fuzz-admin-${randomBytes(12).toString('hex')}`
  const port = await findFreePort()
  const url = `http://127.0.0.1:${port}`
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(PREFECT_|PUSHPOOL_)/.test(key))),
    PORT: String(port),
    PUSHPOOL_STORE_URL: `sqlite:${join(work, 'pushpool.db')}`,
    PUSHPOOL_WEBHOOK_SECRETS: webhookSecret,
    PUSHPOOL_ADMIN_TOKENS: adminToken,
    PREFECT_API_URL: peers.apiUrl,
    PREFECT_API_AUTH_STRING: peers.authString,
    PUSHPOOL_POOLS: pool,
    PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
    LOG_LEVEL: 'warn',
    _TAPJS_PROCESSINFO_COVERAGE_: '0'
  }
  const server = spawn(process.execPath, [join(REPO, 'src', 'server.ts')], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let serverOutput = ''
  server.stdout.on('data', (c: Buffer) => { serverOutput += c.toString('utf8') })
  server.stderr.on('data', (c: Buffer) => { serverOutput += c.toString('utf8') })
  const exited = new Promise<void>(resolve => server.once('exit', () => resolve()))
  cleanups.push(async () => { if (server.exitCode === null && server.signalCode === null) { server.kill('SIGTERM'); await exited } })
  for (const deadline = Date.now() + 30_000; ;) {
    if (server.exitCode !== null) throw new Error(`pushpool exited:\n${serverOutput}`)
    if (await fetch(`${url}/readyz`).then(r => r.ok, () => false)) break
    if (Date.now() > deadline) throw new Error(`pushpool was not ready within 30 s:\n${serverOutput}`)
    await sleep(100)
  }

  // Real flow runs and dispatches, so that generated requests also reach the deep paths: the hook
  // below gives half of the webhooks a resource_id of a real run (or of a well-formed unknown
  // one), and half of the {id} requests the id of a real dispatch.
  const flowRuns: string[] = []
  const dispatches: string[] = []
  for (let i = 0; i < 8; i++) {
    const run = (await prefect.createFlowRun(deploymentId)).id
    flowRuns.push(run)
    if (i >= 3) continue
    const res = await fetch(`${url}/v1/webhooks/prefect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${webhookSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ event_id: randomUUID(), event: 'prefect.flow-run.Scheduled', occurred: new Date().toISOString(), resource_id: `prefect.flow-run.${run}` })
    })
    const json = await res.json() as { dispatch_id?: string }
    if (json.dispatch_id !== undefined) dispatches.push(json.dispatch_id)
  }
  const hooks = join(work, 'pushpool_fuzz_hooks.py')
  writeFileSync(hooks, HOOKS)

  // Each security scheme of openapi.yaml gets its own credential; googleIdToken (reconcile's
  // alternative to the admin token) is given none, so reconcile is called with the admin token.
  const configFile = join(work, 'schemathesis.toml')
  writeFileSync(configFile, [
    '[auth.openapi.webhookSecret]',
    'bearer = "${PUSHPOOL_FUZZ_WEBHOOK_SECRET}"',
    '[auth.openapi.adminToken]',
    'bearer = "${PUSHPOOL_FUZZ_ADMIN_TOKEN}"',
    ''
  ].join('\n'))
  const reportDir = join(work, 'report')
  const argv = [
    '--config-file', configFile,
    'run', join(REPO, 'openapi.yaml'),
    '--url', url,
    '--checks', CHECKS,
    '--phases', 'examples,coverage,fuzzing',
    '--max-examples', String(maxExamples),
    '--workers', args.workers,
    '--request-timeout', '15',
    '--suppress-health-check', 'too_slow',
    '--report', 'ndjson,junit',
    '--report-dir', reportDir,
    '--no-color',
    ...(args.seed !== undefined ? ['--seed', args.seed] : [])
  ]
  say(`schemathesis ${argv.join(' ')}`)
  const result = await run(schemathesis, argv, {
    cwd: work,
    env: {
      ...process.env,
      PUSHPOOL_FUZZ_WEBHOOK_SECRET: webhookSecret,
      PUSHPOOL_FUZZ_ADMIN_TOKEN: adminToken,
      PUSHPOOL_FUZZ_FLOW_RUNS: flowRuns.join(','),
      PUSHPOOL_FUZZ_DISPATCHES: dispatches.join(','),
      SCHEMATHESIS_HOOKS: hooks,
      NO_COLOR: '1'
    },
    echo: true
  })

  const counts = countRequests(reportDir)
  const failures = readFailures(reportDir)
  const ok = result.code === 0 && counts.requests >= minRequests && failures.length === 0
  for (const failure of failures) process.stdout.write(`fuzz: failed ${failure.operation}: ${failure.codes.join(', ')}\n`)
  process.stdout.write(`fuzz: requests=${counts.requests} operations=${counts.operations.size} ` +
    `statuses=${JSON.stringify(Object.fromEntries([...counts.statuses].sort()))} failures=${failures.length} exit=${result.code}\n`)
  if (counts.requests < minRequests) process.stdout.write(`fuzz: ✗ only ${counts.requests} requests, fewer than --min-requests ${minRequests}\n`)
  if (!ok || args['keep-report']) {
    process.stdout.write(`fuzz: reports in ${reportDir}\n`)
    const errors = serverOutput.split('\n').filter(line => /"severity":"(ERROR|CRITICAL)"/.test(line)).slice(-10)
    for (const line of errors) process.stdout.write(`fuzz: pushpool logged: ${line.slice(0, 500)}\n`)
  }
  return ok ? 0 : 1
}

/** Every HTTP exchange schemathesis recorded in its ndjson event stream. */
function countRequests (reportDir: string): { requests: number, operations: Set<string>, statuses: Map<number, number> } {
  const counts = { requests: 0, operations: new Set<string>(), statuses: new Map<number, number>() }
  if (!existsSync(reportDir)) return counts
  for (const file of readdirSync(reportDir).filter(f => f.endsWith('.ndjson'))) {
    for (const line of readFileSync(join(reportDir, file), 'utf8').split('\n')) {
      if (line === '') continue
      const event = JSON.parse(line) as Record<string, any>
      const finished = event.ScenarioFinished
      if (finished === undefined) continue
      for (const [label, interactions] of Object.values(finished.recorder?.interactions ?? {}).map((i: any) => [finished.recorder?.label, i])) {
        const response = (interactions as any)?.response
        if (response === undefined || response === null) continue
        counts.requests++
        counts.operations.add(String(label))
        counts.statuses.set(response.status_code, (counts.statuses.get(response.status_code) ?? 0) + 1)
      }
    }
  }
  return counts
}

/** Failing operations and their schemathesis codes (ST108 …), from the JUnit report. */
function readFailures (reportDir: string): Array<{ operation: string, codes: string[] }> {
  if (!existsSync(reportDir)) return []
  const failures: Array<{ operation: string, codes: string[] }> = []
  for (const file of readdirSync(reportDir).filter(f => f.endsWith('.xml'))) {
    const xml = readFileSync(join(reportDir, file), 'utf8')
    for (const match of xml.matchAll(/<testcase name="([^"]+)"[^>]*?(?<!\/)>([\s\S]*?)<\/testcase>/g)) {
      if (!/<(failure|error)\b/.test(match[2])) continue
      const codes = [...new Set([...match[2].matchAll(/^- (ST\d+ [^\n]+)$/gm)].map(m => m[1].trim()))]
      failures.push({ operation: unescapeXml(match[1]), codes: codes.length > 0 ? codes : ['error (see report)'] })
    }
  }
  return failures
}

function unescapeXml (text: string): string {
  return text.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"').replaceAll('&apos;', "'").replaceAll('&amp;', '&')
}

/** Points half of the generated ids at real records (see main). Checks are untouched. */
const HOOKS = `import os, uuid
import schemathesis

# Hypothesis reseeds the global random module for every example; draw from the OS instead.
random = __import__("random").SystemRandom()

FLOW_RUNS = [i for i in os.environ.get("PUSHPOOL_FUZZ_FLOW_RUNS", "").split(",") if i]
DISPATCHES = [i for i in os.environ.get("PUSHPOOL_FUZZ_DISPATCHES", "").split(",") if i]


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    path = case.operation.path
    if path == "/v1/webhooks/prefect" and isinstance(case.body, dict) and random.random() < 0.5:
        run = random.choice(FLOW_RUNS + [str(uuid.uuid4())])
        case.body = {**case.body, "resource_id": "prefect.flow-run." + run}
    elif "{id}" in path and DISPATCHES and isinstance(case.path_parameters, dict) and random.random() < 0.5:
        case.path_parameters = {**case.path_parameters, "id": random.choice(DISPATCHES)}
`

let code = 1
try {
  code = await main()
} catch (err) {
  process.stderr.write(`fuzz: failed: ${(err as Error).stack ?? String(err)}\n`)
} finally {
  for (const cleanup of cleanups.reverse()) {
    try { await cleanup() } catch (err) { process.stderr.write(`fuzz: cleanup: ${(err as Error).message}\n`) }
  }
  if (code === 0 && !args['keep-report']) rmSync(work, { recursive: true, force: true })
}
process.exit(code)
