// Cloud Logging entries.list on the emulator's HTTP side, serving the real output of 'process'
// executions as Cloud Run job entries; over plain HTTP and through google-auth-library's request API.
import { OAuth2Client } from 'google-auth-library'
import t from 'tap'
import type { LogEntry } from '../../src/emulator/index.ts'
import { createJob, nodeCommand, rig, type Rig } from './helpers.ts'

const r = await rig(t, { executions: 'process' })
const PROJECT = 'p'

interface ListAnswer { status: number, body: { entries?: LogEntry[], nextPageToken?: string, error?: { code: number, status: string, message: string } } }

async function list (request: Record<string, unknown>, headers: Record<string, string> = { authorization: 'Bearer test-token' }): Promise<ListAnswer> {
  const res = await fetch(`${r.emu.httpUrl}/v2/entries:list`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(request)
  })
  return { status: res.status, body: await res.json() as ListAnswer['body'] }
}

/** Runs a one-off job whose container runs `script` with node; resolves with the execution's short id once it ended. */
async function runScript (rig: Rig, jobId: string, script: string): Promise<{ execution: string, name: string }> {
  const job = await createJob(rig, jobId, { command: nodeCommand(script) })
  const [op] = await rig.jobs.runJob({ name: job })
  const name = (op.metadata as { name: string }).name
  await rig.emu.waitForExecution(name)
  return { name, execution: name.split('/').at(-1)! }
}

/** The filter pushpool sends for one execution's container output. */
const executionFilter = (job: string, execution: string): string => [
  'resource.type="cloud_run_job"',
  `resource.labels.job_name="${job}"`,
  'resource.labels.location="us-central1"',
  `labels."run.googleapis.com/execution_name"="${execution}"`,
  `(logName="projects/${PROJECT}/logs/run.googleapis.com%2Fstdout" OR logName="projects/${PROJECT}/logs/run.googleapis.com%2Fstderr")`
].join('\n')

const crash = await runScript(r, 'crashing',
  'for (let i = 1; i <= 5; i++) console.log(`line ${i}`); console.error("Traceback: boom"); process.exit(3)')

t.test('each line is a cloud_run_job entry with Cloud Run\'s resource, labels, logName and payload', async t => {
  const { status, body } = await list({ resourceNames: [`projects/${PROJECT}`], filter: executionFilter('crashing', crash.execution) })
  t.equal(status, 200)
  const entries = body.entries!
  t.same(entries.filter(e => e.logName.endsWith('stdout')).map(e => e.textPayload), ['line 1', 'line 2', 'line 3', 'line 4', 'line 5'],
    'stdout lines, oldest first by default')
  const stderr = entries.find(e => e.logName === `projects/${PROJECT}/logs/run.googleapis.com%2Fstderr`)
  t.equal(stderr?.textPayload, 'Traceback: boom')
  for (const entry of entries) {
    t.same(entry.resource, { type: 'cloud_run_job', labels: { project_id: PROJECT, job_name: 'crashing', location: 'us-central1' } })
    t.match(entry.labels, {
      'run.googleapis.com/execution_name': crash.execution,
      'run.googleapis.com/task_index': '0',
      'run.googleapis.com/task_attempt': '0',
      instanceId: /^00[0-9a-f]+$/
    })
    t.notOk('severity' in entry, 'a plain-text line has no severity (DEFAULT), on stderr too')
    t.match(entry.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    t.match(entry.receiveTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/)
    t.match(entry.insertId, /^[0-9a-f]{24}$/)
  }
})

t.test('the exit is a system entry; timestamp desc with pageSize gives the last lines, newest first', async t => {
  const system = await list({
    resourceNames: [`projects/${PROJECT}`],
    filter: `labels."run.googleapis.com/execution_name"="${crash.execution}" AND log_id("run.googleapis.com/varlog/system")`
  })
  t.match(system.body.entries, [{ textPayload: 'Container called exit(3).', severity: 'WARNING', labels: { container_name: 'crashing-1' } }])
  const last = await list({
    resourceNames: [`projects/${PROJECT}`],
    filter: `${executionFilter('crashing', crash.execution)} logName:"stdout"`,
    orderBy: 'timestamp desc',
    pageSize: 2
  })
  t.same(last.body.entries?.map(e => e.textPayload), ['line 5', 'line 4'])
  t.ok(last.body.nextPageToken, 'more to read')
  const next = await list({
    resourceNames: [`projects/${PROJECT}`],
    filter: `${executionFilter('crashing', crash.execution)} logName:"stdout"`,
    orderBy: 'timestamp desc',
    pageSize: 2,
    pageToken: last.body.nextPageToken
  })
  t.same(next.body.entries?.map(e => e.textPayload), ['line 3', 'line 2'])
})

t.test('a single-line JSON object becomes jsonPayload with its severity; exit(0) is INFO', async t => {
  const ok = await runScript(r, 'structured', 'console.log(JSON.stringify({ severity: "error", message: "db down", code: 7 })); console.log("plain")')
  const { body } = await list({ resourceNames: [`projects/${PROJECT}`], filter: `labels."run.googleapis.com/execution_name"="${ok.execution}"` })
  t.match(body.entries, [
    { severity: 'ERROR', jsonPayload: { message: 'db down', code: 7 } },
    { textPayload: 'plain' },
    { textPayload: 'Container called exit(0).', severity: 'INFO' }
  ])
  t.notOk('severity' in (body.entries![0].jsonPayload ?? {}), 'severity is lifted out of the payload')
  const errors = await list({ resourceNames: [`projects/${PROJECT}`], filter: `labels."run.googleapis.com/execution_name"="${ok.execution}" severity>=ERROR` })
  t.equal(errors.body.entries?.length, 1)
})

t.test('timestamps compare as times; other projects\' entries are not listed', async t => {
  const all = (await list({ resourceNames: [`projects/${PROJECT}`], filter: executionFilter('crashing', crash.execution) })).body.entries!
  const third = all.find(e => e.textPayload === 'line 3')!
  const after = await list({ resourceNames: [`projects/${PROJECT}`], filter: `${executionFilter('crashing', crash.execution)} AND timestamp>"${third.timestamp}" AND logName:stdout` })
  t.same(after.body.entries?.map(e => e.textPayload), ['line 4', 'line 5'])
  const other = await list({ resourceNames: ['projects/someone-else'], filter: '' })
  t.same(other.body, {}, 'an empty answer is an empty object, as proto3 JSON has it')
})

t.test('refusals: Google\'s error shape and status', async t => {
  const cases: Array<[string, Record<string, unknown>, number]> = [
    ['unknown syntax', { resourceNames: [`projects/${PROJECT}`], filter: 'resource.type = ("a" OR "b")' }, 400],
    ['a global text search', { resourceNames: [`projects/${PROJECT}`], filter: '"boom"' }, 400],
    ['dangling operator', { resourceNames: [`projects/${PROJECT}`], filter: 'severity >=' }, 400],
    ['orderBy on another field', { resourceNames: [`projects/${PROJECT}`], orderBy: 'severity desc' }, 400],
    ['pageSize over 1000', { resourceNames: [`projects/${PROJECT}`], pageSize: 1001 }, 400],
    ['no resourceNames', { filter: '' }, 400],
    ['a forged pageToken', { resourceNames: [`projects/${PROJECT}`], pageToken: 'bm9wZQ' }, 400]
  ]
  for (const [label, request, status] of cases) {
    const answer = await list(request)
    t.equal(answer.status, status, label)
    t.match(answer.body, { error: { code: status, status: 'INVALID_ARGUMENT', message: String } }, label)
  }
  const anonymous = await list({ resourceNames: [`projects/${PROJECT}`] }, {})
  t.equal(anonymous.status, 401)
  t.equal(anonymous.body.error?.status, 'UNAUTHENTICATED')
})

t.test('through google-auth-library\'s request API, as pushpool calls it', async t => {
  const client = new OAuth2Client()
  client.setCredentials({ access_token: 'emulator-token', expiry_date: Date.now() + 3600_000 })
  const res = await client.request<{ entries: LogEntry[] }>({
    url: `${r.emu.httpUrl}/v2/entries:list`,
    method: 'POST',
    data: { resourceNames: [`projects/${PROJECT}`], filter: `${executionFilter('crashing', crash.execution)} -log_id("run.googleapis.com/stderr")`, orderBy: 'timestamp desc', pageSize: 3 }
  })
  t.same(res.data.entries.map(e => e.textPayload), ['line 5', 'line 4', 'line 3'])
  const error = await client.request({ url: `${r.emu.httpUrl}/v2/entries:list`, method: 'POST', data: { resourceNames: [`projects/${PROJECT}`], filter: 'a =' } })
    .then(() => ({}), (e: unknown) => e) as { status?: number, response?: { data?: unknown } }
  t.equal(error.status, 400)
  t.match(error.response?.data, { error: { status: 'INVALID_ARGUMENT', message: /Unparseable filter/ } })
})
