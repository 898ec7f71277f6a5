// An execution's end is pushed, not found at the next pass: the emulator runs the container as a
// local process and, when it exits, pushes Cloud Run's System Event audit entry in a Pub/Sub
// envelope with an OIDC token (docs/execution-end-push.md) to POST /v1/executions/ended. Reconcile
// is never called here: only the push can crash the run.
import t from 'tap'
import http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { adminHeaders } from '../helper.ts'
import { scene, executionsOf } from '../harness/scene.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const peers = await prefectServer()
const prefect = new PrefectFixtures(peers.apiUrl, peers.authString)
const PUSHER = 'pushpool-execution-end@proj-test.iam.gserviceaccount.com'
// The emulator pushes to a URL fixed when it starts. This front door holds its port from the start
// (a port found free and bound only later may be taken by another test meanwhile) and hands each
// push to the current test's app.
let current: FastifyInstance | null = null
const front = http.createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    if (current === null) { res.writeHead(503).end(); return }
    current.inject({ method: req.method as 'POST', url: req.url ?? '/', headers: req.headers, payload: Buffer.concat(chunks) }).then(reply => {
      res.writeHead(reply.statusCode, { 'content-type': String(reply.headers['content-type'] ?? 'application/json') }).end(reply.rawPayload)
    }, () => { res.writeHead(502).end() })
  })
})
await new Promise<void>(resolve => front.listen(0, '127.0.0.1', resolve))
t.teardown(() => { front.close() })
const audience = `http://127.0.0.1:${(front.address() as AddressInfo).port}`
const emulator = await startEmulator({
  executions: 'process',
  executionEndPush: { url: `${audience}/v1/executions/ended`, audience, serviceAccountEmail: PUSHER, minBackoffMs: 200, maxBackoffMs: 1000 }
})
t.teardown(() => emulator.close())

t.test('a container that fails before the engine starts: the run is Crashed on the push of its end, with Cloud Run\'s reason', async t => {
  // The container exits only once the test lets it, after the dispatch is launched: a push of its
  // end before then (Prefect slow to take the infrastructure_pid on a loaded machine) would find no
  // launched dispatch and be ignored, and only reconcile, never called here, would crash the run.
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-execution-end-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const exitGate = join(dir, 'exit')
  const s = await scene(t, prefect, peers, emulator, {
    // The "image" prints an import error on stderr and exits 3, as a broken container does.
    jobVariables: { command: `sh -c "echo 'ModuleNotFoundError: No module named flows' >&2; until [ -e ${exitGate} ]; do sleep 0.1; done; exit 3"` },
    env: { PUSHPOOL_AUDIENCE: audience, PUSHPOOL_EXECUTION_EVENTS_PRINCIPAL: PUSHER, PUSHPOOL_GOOGLE_CERTS_URL: emulator.certsUrl }
  })
  current = s.app
  t.teardown(() => { current = null })
  const flowRunId = await s.flowRun()
  const reply = await s.webhook(flowRunId)
  t.equal(reply.json().state, 'launched')
  const execution = executionsOf(emulator, flowRunId)[0]
  t.notOk(emulator.execution(execution.name)?.completionTime, 'the container still runs, held until the test lets it exit')
  writeFileSync(exitGate, '')

  const pushed = await emulator.waitForExecutionEndPush(execution.name)
  t.equal(pushed.status, 200, 'the push was acknowledged')
  const crashed = await prefect.waitForFlowRunState(flowRunId, ['CRASHED'], 30_000)
  t.match(crashed.state?.message, /^Flow run infrastructure exited with non-zero status code 3\. .* The Cloud Run execution failed: /,
    `the run is Crashed, naming the exit code as Prefect's worker does, then Cloud Run's reason: ${crashed.state?.message}`)
  const ended = Date.parse(emulator.execution(execution.name)?.completionTime ?? '')
  t.comment(`Crashed ${Date.parse(crashed.state?.timestamp ?? '') - ended} ms after the container's exit, with no reconcile`)
  const detail = await s.detail(reply.json().dispatch_id)
  t.equal(detail.dispatch.state, 'crashed')

  // A duplicate push (Pub/Sub delivers at least once) finds nothing left to do.
  const again = await s.app.inject({
    method: 'POST', url: '/v1/executions/ended', headers: { ...adminHeaders(), 'content-type': 'application/json' }, payload: pushed.body
  })
  t.equal(again.json().status, 'ignored')

  // Inside Prefect: the worker's lines, the crash, and the container's own last lines under a header.
  const messages = await logsOf(flowRunId, /\[stderr\] ModuleNotFoundError/)
  t.match(messages, [
    /^Worker 'pushpool' submitting flow run/,
    /^pushpool dispatch .* claimed the flow run/
  ], 'the claim, as the worker writes it')
  t.ok(messages.some(m => /^Cloud Run Job V2 .* submitted for execution with command: sh -c/.test(m)), 'the launch, with its command')
  t.ok(messages.some(m => /^Reported flow run '.*' as crashed: Flow run infrastructure exited with non-zero status code 3/.test(m)), 'the crash report')
  t.ok(messages.some(m => /^Container logs from Cloud Run execution '.*', its last \d+ lines in Cloud Logging/.test(m)), 'the container lines\' header')
  t.ok(messages.includes('[stderr] ModuleNotFoundError: No module named flows'),
    `the container's stderr line, in the run's logs (from the header on: ${JSON.stringify(messages.slice(messages.findIndex(m => m.startsWith('Container logs from'))))})`)
  t.ok(messages.includes('[system] Container called exit(3).'), 'and its exit')
  const events = await eventsOf(flowRunId, 6)
  const expected = ['prefect.worker.submitted-flow-run', 'pushpool.dispatch.claimed', 'pushpool.dispatch.launched',
    'prefect.worker.executed-flow-run', 'pushpool.dispatch.execution-ended', 'pushpool.dispatch.crashed']
  t.same(expected.filter(name => !events.includes(name)), [], `the worker's events and pushpool's own: ${events.join(', ')}`)
})

/** The run's log messages, read until one matches `last` (the writer sends in the background) or 30 s pass. */
async function logsOf (flowRunId: string, last: RegExp): Promise<string[]> {
  for (const deadline = Date.now() + 30_000; ;) {
    const logs = await prefect.request<Array<{ message: string }>>('POST', '/logs/filter',
      { logs: { flow_run_id: { any_: [flowRunId] } }, sort: 'TIMESTAMP_ASC', limit: 200 })
    const messages = logs.map(l => l.message)
    if (messages.some(m => last.test(m)) || Date.now() > deadline) return messages
    await sleep(250)
  }
}

/** The names of the events about the run, once at least `expected` are persisted (Prefect writes them within seconds) or 30 s pass. */
async function eventsOf (flowRunId: string, expected: number): Promise<string[]> {
  for (const deadline = Date.now() + 30_000; ;) {
    const page = await prefect.request<{ events: Array<{ event: string }> }>('POST', '/events/filter', {
      filter: { any_resource: { id: [`prefect.flow-run.${flowRunId}`] }, event: { prefix: ['prefect.worker.', 'pushpool.'] }, order: 'ASC' },
      limit: 50
    })
    const names = page.events.map(e => e.event)
    if (names.length >= expected || Date.now() > deadline) return names
    await sleep(250)
  }
}

t.test('the route refuses what is not a Pub/Sub push of a log entry, and a token of another account', async t => {
  const s = await scene(t, prefect, peers, emulator, {
    env: { PUSHPOOL_AUDIENCE: audience, PUSHPOOL_EXECUTION_EVENTS_PRINCIPAL: PUSHER, PUSHPOOL_GOOGLE_CERTS_URL: emulator.certsUrl }
  })
  const post = (authorization: string, payload: unknown) => s.app.inject({
    method: 'POST', url: '/v1/executions/ended', headers: { authorization, 'content-type': 'application/json' }, payload: JSON.stringify(payload)
  })
  const token = `Bearer ${emulator.idToken(PUSHER, audience)}`
  const bad = await post(token, { message: { data: 'not base64 json!' } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'PUSH_INVALID_MESSAGE')
  const other = Buffer.from(JSON.stringify({ resource: { type: 'cloud_run_revision' } })).toString('base64')
  t.equal((await post(token, { message: { data: other } })).json().status, 'ignored', 'another kind of entry is acknowledged and ignored')
  t.equal((await post(`Bearer ${emulator.idToken('intruder@proj-test.iam.gserviceaccount.com', audience)}`, { message: { data: other } })).json().code, 'ADMIN_FORBIDDEN')
  await sleep(0)
})
