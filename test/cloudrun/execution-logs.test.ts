// A crashed execution's last lines, read from the emulator's Cloud Logging, which serves the REAL
// stdout/stderr of a local 'process' execution as Cloud Run job entries; through google-auth-library
// as in production. Redaction and truncation are checked on lines the container really printed.
import t from 'tap'
import { executionFilter, executionLinks, lastLines, type LastLinesRequest } from '../../src/cloudrun/execution-logs.ts'
import { RetryLater, NeverRetry } from '../../src/failures.ts'
import { createJob, nodeCommand, rig, type Rig } from '../emulator/helpers.ts'

const r = await rig(t, { executions: 'process' })
const options = { authClient: null, baseUrl: r.emu.httpUrl }

interface Ran { execution: string, createTime: string }

/** Runs a one-off job whose container runs `script` with node, until it ended. */
async function runScript (rig: Rig, jobId: string, script: string): Promise<Ran> {
  const job = await createJob(rig, jobId, { command: nodeCommand(script) })
  const [op] = await rig.jobs.runJob({ name: job })
  const metadata = op.metadata as unknown as { name: string, createTime: { seconds: number | string, nanos?: number } }
  await rig.emu.waitForExecution(metadata.name)
  const [execution] = await rig.executions.getExecution({ name: metadata.name })
  const seconds = Number(execution.createTime?.seconds ?? 0)
  return { execution: metadata.name.split('/').at(-1)!, createTime: new Date(seconds * 1000 + Math.floor((execution.createTime?.nanos ?? 0) / 1e6)).toISOString() }
}

const target = (ran: Ran, job: string, extra: Partial<LastLinesRequest> = {}): LastLinesRequest =>
  ({ project: 'p', region: 'us-central1', job, execution: ran.execution, createTime: ran.createTime, ...extra })

const SECRET = 'pnu_0123456789abcdefghij'
const PEM_BODY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7'
const crash = await runScript(r, 'crashing', `
  for (let i = 1; i <= 60; i++) console.log('line ' + i)
  console.log('connecting with PREFECT_API_KEY=${SECRET} and PREFECT_API_AUTH_STRING="admin:hunter22"')
  console.log('auth header: Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig, token ya29.a0AfH6SMBx')
  console.log(JSON.stringify({ type: 'service_account', private_key: '-----BEGIN PRIVATE KEY-----\\n${PEM_BODY}\\n-----END PRIVATE KEY-----\\n' }))
  console.log('-----BEGIN RSA PRIVATE KEY-----'); console.log('${PEM_BODY}'); console.log('-----END RSA PRIVATE KEY-----')
  console.log('db at postgresql://app:s3cr3tpw@db:5432/x, client_secret: abc123def, known value ${SECRET}xyz')
  console.log('x'.repeat(5000))
  console.error('Traceback (most recent call last):')
  console.error("ModuleNotFoundError: No module named 'etl'")
  process.exit(3)`)

t.test('the last N lines, oldest first, with the exit code from Cloud Run\'s system entry', async t => {
  const { lines, exitCode, earlierOmitted } = await lastLines(target(crash, 'crashing', { limit: 13 }), options)
  t.equal(exitCode, 3)
  t.equal(earlierOmitted, true, 'there were earlier lines')
  t.equal(lines.length, 13)
  t.same(lines.slice(-3).map(l => [l.stream, l.severity, l.text]), [
    ['stderr', null, 'Traceback (most recent call last):'],
    ['stderr', null, "ModuleNotFoundError: No module named 'etl'"],
    ['system', 'WARNING', 'Container called exit(3).']
  ])
  t.same(lines.slice(0, 2).map(l => l.text), ['line 59', 'line 60'])
  const times = lines.map(l => l.timestamp)
  t.same(times, [...times].sort(), 'chronological')
})

t.test('secrets are blanked and long lines cut before they leave', async t => {
  const { lines } = await lastLines(target(crash, 'crashing', { limit: 13, secrets: [SECRET, 'short'] }), { ...options, maxLineChars: 300 })
  const text = lines.map(l => l.text).join('\n')
  t.notMatch(text, SECRET)
  t.notMatch(text, 'hunter22')
  t.notMatch(text, 'eyJhbGciOiJSUzI1NiJ9')
  t.notMatch(text, 'ya29.a0AfH6SMBx')
  t.notMatch(text, PEM_BODY)
  t.notMatch(text, 's3cr3tpw')
  t.notMatch(text, 'abc123def')
  t.same(lines.slice(2, 10).map(l => l.text), [
    'connecting with PREFECT_API_KEY=[redacted] and PREFECT_API_AUTH_STRING="[redacted]"',
    'auth header: Authorization: Bearer [redacted], token [redacted]',
    '{"type":"service_account","private_key":"[redacted]"}',
    '-----BEGIN RSA PRIVATE KEY-----[redacted]',
    '[redacted]',
    '[redacted]-----END RSA PRIVATE KEY-----',
    'db at postgresql://app:[redacted]@db:5432/x, client_secret: [redacted], known value [redacted]xyz',
    `${'x'.repeat(285)}... [truncated]`
  ])
})

t.test('only this execution\'s entries, and none from well before its createTime', async t => {
  const other = await runScript(r, 'crashing2', 'console.log("other job"); process.exit(0)')
  const again = await lastLines(target(other, 'crashing2'), options)
  t.same(again.lines.map(l => l.text), ['other job', 'Container called exit(0).'])
  t.equal(again.exitCode, 0)
  t.equal(again.earlierOmitted, false)
  const later = await lastLines(target(crash, 'crashing', { createTime: new Date(Date.now() + 5 * 60_000) }), options)
  t.same(later, { lines: [], exitCode: null, earlierOmitted: false })
  const fullName = await lastLines(target(crash, 'crashing', { execution: `projects/p/locations/us-central1/jobs/crashing/executions/${crash.execution}`, limit: 1 }), options)
  t.same(fullName.lines.map(l => l.text), ['Container called exit(3).'], 'a full execution name is taken too')
})

t.test('a line stamped a little before createTime (the two come from different clocks) is still read', async t => {
  const early = new Date(Date.parse(crash.createTime) + 30_000)
  const { lines, exitCode } = await lastLines(target(crash, 'crashing', { createTime: early, limit: 3 }), options)
  t.same(lines.map(l => l.text), ['Traceback (most recent call last):', "ModuleNotFoundError: No module named 'etl'", 'Container called exit(3).'])
  t.equal(exitCode, 3)
})

t.test('the filter names the execution, its job, region, logs and start, less a minute for clocks that disagree', async t => {
  t.equal(executionFilter({ job: 'j', region: 'europe-west1', execution: 'j-abc', createTime: new Date('2026-12-06T10:00:00Z') }), [
    'resource.type="cloud_run_job"',
    'resource.labels.job_name="j"',
    'resource.labels.location="europe-west1"',
    'labels."run.googleapis.com/execution_name"="j-abc"',
    '(log_id("run.googleapis.com/stdout") OR log_id("run.googleapis.com/stderr") OR log_id("run.googleapis.com/varlog/system"))',
    'timestamp>="2026-12-06T09:59:00.000Z"'
  ].join('\n'))
})

t.test('the console links of an execution', async t => {
  t.same(executionLinks({ project: 'proj', region: 'us-central1', execution: 'projects/proj/locations/us-central1/jobs/j/executions/j-x7k2q' }), {
    consoleUrl: 'https://console.cloud.google.com/run/jobs/executions/details/us-central1/j-x7k2q?project=proj',
    logsUrl: 'https://console.cloud.google.com/run/jobs/executions/details/us-central1/j-x7k2q/logs?project=proj'
  })
})

t.test('refusals say what to fix and are never retried; outages are retried later', async t => {
  const cases: Array<[number, typeof NeverRetry | typeof RetryLater, RegExp]> = [
    [7, NeverRetry, /denied listing the logs of project p \(403 PERMISSION_DENIED\): grant the launching identity roles\/logging.viewer/],
    [5, NeverRetry, /found no project p \(404 NOT_FOUND\)/],
    [16, NeverRetry, /credentials \(401 UNAUTHENTICATED\)/],
    [14, RetryLater, /\(503 UNAVAILABLE\).*try again later/],
    [8, RetryLater, /\(429 RESOURCE_EXHAUSTED\)/]
  ]
  for (const [code, type, message] of cases) {
    r.emu.addFault({ method: 'ListLogEntries', code, times: 1 })
    const error = await lastLines(target(crash, 'crashing'), options).then(() => null, (e: unknown) => e)
    t.type(error, type, `gRPC code ${code}`)
    t.match((error as Error).message, message)
  }
  r.emu.addFault({ method: 'ListLogEntries', latencyMs: 2000, times: 1 })
  const slow = await lastLines(target(crash, 'crashing'), { ...options, timeoutMs: 200 }).then(() => null, (e: unknown) => e)
  t.type(slow, RetryLater, 'a timeout is an outage')
  const gone = await lastLines(target(crash, 'crashing'), { ...options, baseUrl: 'http://127.0.0.1:1' }).then(() => null, (e: unknown) => e)
  t.type(gone, RetryLater, 'so is an unreachable endpoint')
  await t.rejects(lastLines(target(crash, 'crashing', { limit: 1001 }), options), RangeError)
})
