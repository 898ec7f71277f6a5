// pushpool's flow-run log lines and events, written through the batched writer to a REAL Prefect
// server and read back as Prefect's UI reads them (POST /logs/filter, POST /events/filter); the
// worker events compared with those Prefect's own cloud-run-v2 worker builds for the same run; and a
// Prefect that fails, hangs or is gone costs the caller nothing but counted losses.
import { execFile } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t from 'tap'
import { PrefectActivityWriter, type ActivityKind, type ActivityOutcome } from '../../src/prefect/activity-writer.ts'
import { PrefectClient } from '../../src/prefect/client.ts'
import {
  claimedLines, containerLines, crashedLines, endedLines, launchedLines, submittingLines, CONTAINER_LOGGER, LOG_LEVEL, WORKER_LOGGER,
  type LogCreate
} from '../../src/prefect/flow-run-logs.ts'
import { infrastructureExitInfo, nonZeroExitMessage } from '../../src/prefect/exit-codes.ts'
import {
  dispatchClaimedEvent, dispatchCrashedEvent, dispatchLaunchedEvent, executedFlowRunEvent, executionEndedEvent, submittedFlowRunEvent,
  type PrefectEvent, type RunObjects, type WorkerIdentity
} from '../../src/prefect/worker-events.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { testVenv } from '../harness/test-env.ts'

const server = await prefectServer()
const fixtures = new PrefectFixtures(server.apiUrl, server.authString)
const client = new PrefectClient({ apiUrl: server.apiUrl, authString: server.authString, apiKey: null })
t.teardown(() => { client.close() })

const { pool, flowId, deploymentId } = await fixtures.servedPool('activity', 'proj')
// A deployment and a flow run with tags, shared and not, so the tag resources' union and order show.
await fixtures.request('PATCH', `/deployments/${deploymentId}`, { tags: ['nightly', 'etl'] })
const created = await fixtures.request<{ id: string }>('POST', `/deployments/${deploymentId}/create_flow_run`, { tags: ['etl', 'Team A'] })
const flowRun = (await client.readFlowRun(created.id))!
const objects: RunObjects = {
  flowRun,
  deployment: await client.readDeployment(deploymentId),
  flow: await client.readFlow(flowId),
  workPool: await client.readWorkPool(pool)
}
const worker: WorkerIdentity = { name: 'pushpool', type: 'cloud-run-v2', prefectVersion: await client.readServerVersion() }

interface ReadLog { name: string, level: number, message: string, timestamp: string, flow_run_id: string }
interface ReadEvent { id: string, event: string, resource: Record<string, string>, related: Array<Record<string, string>>, payload: Record<string, unknown>, follows: string | null }

const readLogs = (flowRunId: string): Promise<ReadLog[]> =>
  fixtures.request('POST', '/logs/filter', { logs: { flow_run_id: { any_: [flowRunId] } }, sort: 'TIMESTAMP_ASC', limit: 200 })

/** Events that name the run, as the run page's event feed asks for them; the persister writes them within seconds. */
async function readEvents (flowRunId: string, expected: number): Promise<ReadEvent[]> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const page = await fixtures.request<{ events: ReadEvent[] }>('POST', '/events/filter', {
      filter: { any_resource: { id: [`prefect.flow-run.${flowRunId}`] }, event: { prefix: ['prefect.worker.', 'pushpool.'] }, order: 'ASC' },
      limit: 50
    })
    if (page.events.length >= expected || Date.now() > deadline) return page.events
    await sleep(250)
  }
}

const execFileAsync = promisify(execFile)

/** What Prefect's own worker emits for the run (test/prefect/worker_events.py). */
async function pythonWorkerEvents (flowRunId: string, jobName: string, statusCode: number): Promise<ReadEvent[]> {
  const { python } = await testVenv()
  const script = new URL('./worker_events.py', import.meta.url).pathname
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PREFECT_')))
  const { stdout } = await execFileAsync(python, [script, flowRunId, worker.name, jobName, String(statusCode)], {
    env: { ...env, PREFECT_API_URL: server.apiUrl, PREFECT_API_AUTH_STRING: server.authString, PREFECT_LOGGING_TO_API_ENABLED: 'false' },
    timeout: 120_000
  })
  return JSON.parse(stdout) as ReadEvent[]
}

t.test('the worker events are the ones Prefect\'s cloud-run-v2 worker builds for the same run', async t => {
  const reference = await pythonWorkerEvents(flowRun.id, 'prefect-job-abc', 1)
  const submitted = submittedFlowRunEvent(worker, objects)
  const executed = executedFlowRunEvent(worker, objects, { identifier: 'prefect-job-abc', statusCode: 1 }, submitted)
  t.same(reference.map(e => e.event), ['prefect.worker.submitted-flow-run', 'prefect.worker.executed-flow-run'])
  t.same(submitted.resource, reference[0].resource)
  t.same(submitted.related, reference[0].related)
  t.same(executed.resource, reference[1].resource)
  t.same(executed.related, reference[1].related)
  t.equal(executed.follows, submitted.id)
  t.equal(submitted.resource['prefect.resource.id'], 'prefect.worker.cloud-run-v2.pushpool')
  t.same(submitted.related.map(r => r['prefect.resource.id']), [
    `prefect.deployment.${deploymentId}`, `prefect.flow.${flowId}`, `prefect.flow-run.${flowRun.id}`,
    'prefect.tag.Team A', 'prefect.tag.etl', 'prefect.tag.nightly', `prefect.work-pool.${objects.workPool!.id}`
  ], 'deployment, flow, flow run, the union of their tags sorted, the pool')
})

t.test('lines and events reach the run in Prefect, with their level, logger name and related resources', async t => {
  const counted: Array<[ActivityKind, ActivityOutcome, number]> = []
  const writer = new PrefectActivityWriter({ client, onCount: (kind, outcome, n) => counted.push([kind, outcome, n]) })
  const dispatch = { worker, objects, dispatchId: 'd-0001' }
  const launched = {
    project: 'proj', region: 'us-central1', job: 'prefect-job-abc', execution: 'prefect-job-abc-x7k2q',
    consoleUrl: 'https://console.cloud.google.com/run/jobs/executions/details/us-central1/prefect-job-abc-x7k2q?project=proj',
    logsUrl: 'https://console.cloud.google.com/run/jobs/executions/details/us-central1/prefect-job-abc-x7k2q/logs?project=proj'
  }
  const crash = nonZeroExitMessage(3)
  const lines: LogCreate[] = [
    ...submittingLines(worker.name, flowRun.id),
    ...claimedLines(flowRun.id, 'd-0001'),
    ...launchedLines(flowRun, { job: launched.job, execution: launched.execution, region: launched.region, command: [], createdJob: true, consoleUrl: launched.consoleUrl }),
    ...endedLines(flowRun.id, { job: launched.job, succeeded: false, conditionMessage: 'Task prefect-job-abc-x7k2q-task0 failed with exit code 3', logUri: launched.logsUrl }),
    ...crashedLines(flowRun.id, crash, infrastructureExitInfo(3).resolution),
    ...containerLines(flowRun.id, {
      job: launched.job,
      execution: launched.execution,
      lines: [
        { timestamp: '2026-12-06T10:00:00.000001Z', stream: 'stdout', severity: null, text: 'starting' },
        { timestamp: '2026-12-06T10:00:00.000002Z', stream: 'stderr', severity: null, text: 'ModuleNotFoundError: No module named \'etl\'' },
        { timestamp: '2026-12-06T10:00:00.000003Z', stream: 'system', severity: 'WARNING', text: 'Container called exit(3).' }
      ],
      earlierOmitted: false,
      logsUrl: launched.logsUrl
    })
  ]
  const submitted = submittedFlowRunEvent(worker, objects)
  const claimed = dispatchClaimedEvent(dispatch)
  const launchedEvent = dispatchLaunchedEvent(dispatch, launched, claimed)
  const events: PrefectEvent[] = [
    submitted, claimed, launchedEvent,
    executionEndedEvent(dispatch, { execution: launched.execution, succeeded: false, exitCode: 3, durationSeconds: 4.2, condition: 'failed with exit code 3' }, launchedEvent),
    dispatchCrashedEvent(dispatch, crash),
    executedFlowRunEvent(worker, objects, { identifier: launched.job, statusCode: 1 }, submitted)
  ]
  const started = performance.now()
  writer.log(lines)
  writer.emit(events)
  t.ok(performance.now() - started < 20, 'enqueueing returns at once')
  t.equal(await writer.flush(20_000), true, 'drained')
  t.same(writer.counts(), { logs: { sent: lines.length, dropped: 0, failed: 0, queued: 0 }, events: { sent: events.length, dropped: 0, failed: 0, queued: 0 } })
  t.same(counted.sort(), [['events', 'sent', events.length], ['logs', 'sent', lines.length]], 'one request per kind')

  const read = await readLogs(flowRun.id)
  t.same(read.map(l => [l.name, l.level, l.message]), lines.map(l => [l.name, l.level, l.message]), 'every line, in order')
  t.match(read, [
    { name: WORKER_LOGGER, level: LOG_LEVEL.INFO, message: `Worker 'pushpool' submitting flow run '${flowRun.id}'` },
    { message: 'pushpool dispatch d-0001 claimed the flow run (Prefect accepted Pending)' },
    { message: 'Creating Cloud Run JobV2 prefect-job-abc' },
    { message: 'Submitting Cloud Run Job V2 prefect-job-abc for execution...' },
    { message: 'Cloud Run Job V2 prefect-job-abc submitted for execution with command: default container command' },
    { message: `Cloud Run execution prefect-job-abc-x7k2q of job prefect-job-abc started in us-central1: ${launched.consoleUrl}` },
    { message: `Flow run '${flowRun.name}' submitted to infrastructure` },
    { level: LOG_LEVEL.ERROR, message: 'Cloud Run Job V2 prefect-job-abc failed - Task prefect-job-abc-x7k2q-task0 failed with exit code 3' },
    { message: `Job run logs can be found on GCP at: ${launched.logsUrl}` },
    { message: `Reported flow run '${flowRun.id}' as crashed: Flow run infrastructure exited with non-zero status code 3. Process exited with an unexpected status code.` },
    { message: 'Check the flow run logs and infrastructure logs for more details.' },
    { name: CONTAINER_LOGGER, level: LOG_LEVEL.ERROR, message: /^Container logs from Cloud Run execution 'prefect-job-abc-x7k2q' of job 'prefect-job-abc', its last 3 lines/ },
    { name: CONTAINER_LOGGER, level: LOG_LEVEL.INFO, message: '[stdout] starting' },
    { name: CONTAINER_LOGGER, level: LOG_LEVEL.ERROR, message: '[stderr] ModuleNotFoundError: No module named \'etl\'' },
    { name: CONTAINER_LOGGER, level: LOG_LEVEL.WARNING, message: '[system] Container called exit(3).' }
  ])

  const stored = await readEvents(flowRun.id, events.length)
  t.same(stored.map(e => e.event).sort(), events.map(e => e.event).sort(), 'every event is persisted and found through the run')
  const byId = new Map(stored.map(e => [e.id, e]))
  for (const sent of events) {
    const got = byId.get(sent.id)
    t.ok(got, sent.event)
    if (got === undefined) continue
    t.same(got.resource, sent.resource, `${sent.event}: resource`)
    t.same(got.related, sent.related, `${sent.event}: related resources`)
    t.same(got.payload, sent.payload, `${sent.event}: payload`)
    t.equal(got.follows ?? undefined, sent.follows, `${sent.event}: follows`)
  }
  const launchedStored = byId.get(launchedEvent.id)
  t.match(launchedStored, {
    resource: { 'prefect.resource.id': 'pushpool.dispatch.d-0001' },
    payload: { execution: 'prefect-job-abc-x7k2q', job: 'prefect-job-abc', region: 'us-central1', console_url: launched.consoleUrl, logs_url: launched.logsUrl }
  })
  t.ok(launchedStored?.related.some(r => r['prefect.resource.role'] === 'worker' && r['prefect.resource.id'] === 'prefect.worker.cloud-run-v2.pushpool'),
    'the worker is related to pushpool\'s own events')
  await writer.close()
})

t.test('a batch goes out at batchSize items without waiting for the interval', async t => {
  const run = await fixtures.request<{ id: string }>('POST', `/deployments/${deploymentId}/create_flow_run`, {})
  const writer = new PrefectActivityWriter({ client, batchSize: 5, flushIntervalMs: 60_000 })
  writer.log(Array.from({ length: 5 }, (_, i) => claimedLines(run.id, `batch-${i}`)[0]))
  const deadline = Date.now() + 10_000
  while (writer.counts().logs.sent < 5 && Date.now() < deadline) await sleep(20)
  t.equal(writer.counts().logs.sent, 5, 'sent long before the 60 s interval')
  t.equal((await readLogs(run.id)).length, 5)
  await writer.close()
})

// A loopback server standing in for a Prefect that misbehaves: what the real one cannot be made to do.
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void
const fake = http.createServer()
const sockets = new Set<Socket>()
fake.on('connection', socket => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
let handler: Handler = (_req, res) => { res.end() }
let requests = 0
fake.on('request', (req, res) => { requests++; req.resume(); handler(req, res) })
await new Promise<void>(resolve => fake.listen(0, '127.0.0.1', resolve))
const fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/api`
t.teardown(() => { for (const s of sockets) s.destroy(); fake.close() })

const fakeClient = (url = fakeUrl, timeoutMs = 1000): PrefectClient => {
  const c = new PrefectClient({ apiUrl: url, authString: 'u:p', apiKey: null, timeoutMs })
  t.teardown(() => { c.close() })
  return c
}

t.test('a Prefect answering 500 loses the batch into the failure count; nothing is thrown', async t => {
  handler = (_req, res) => { res.writeHead(500); res.end('{"detail":"boom"}') }
  requests = 0
  const failures: Array<[ActivityKind, number, string]> = []
  const writer = new PrefectActivityWriter({
    client: fakeClient(), flushIntervalMs: 10, onFailure: (kind, n, err) => failures.push([kind, n, (err as Error).message])
  })
  writer.log(claimedLines(flowRun.id, 'x'))
  writer.emit([dispatchClaimedEvent({ worker, objects, dispatchId: 'x' })])
  t.equal(await writer.flush(5000), true)
  t.same(writer.counts(), { logs: { sent: 0, dropped: 0, failed: 1, queued: 0 }, events: { sent: 0, dropped: 0, failed: 1, queued: 0 } })
  t.same(failures.map(([kind, n]) => [kind, n]).sort(), [['events', 1], ['logs', 1]])
  t.match(failures.map(f => f[2]).sort(), [/POST \/events answered 500/, /POST \/logs\/ answered 500/])
  t.equal(requests, 2, 'one request per batch, not retried on a 500')
  await writer.close()
})

t.test('an unreachable Prefect: failures counted, never thrown', async t => {
  const closed = http.createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/api`
  await new Promise<void>(resolve => closed.close(() => resolve()))
  const writer = new PrefectActivityWriter({ client: fakeClient(deadUrl), flushIntervalMs: 10 })
  writer.log([...claimedLines(flowRun.id, 'y'), ...claimedLines(flowRun.id, 'z')])
  t.equal(await writer.flush(5000), true)
  t.same(writer.counts().logs, { sent: 0, dropped: 0, failed: 2, queued: 0 })
  await writer.close()
})

t.test('a Prefect that hangs: the caller never waits, the queue stays bounded, flush gives up in time', async t => {
  const held: http.ServerResponse[] = []
  handler = (_req, res) => { held.push(res) }
  requests = 0
  const writer = new PrefectActivityWriter({ client: fakeClient(fakeUrl, 30_000), maxQueued: 100, batchSize: 10, flushIntervalMs: 5 })
  const line = claimedLines(flowRun.id, 'hang')[0]
  writer.log([line])
  while (requests === 0) await sleep(5)
  const started = performance.now()
  for (let i = 0; i < 10_000; i++) writer.log([line])
  const enqueueMs = performance.now() - started
  t.ok(enqueueMs < 500, `10 000 lines queued in ${enqueueMs.toFixed(1)} ms while a request hangs`)
  t.same(writer.counts().logs, { sent: 0, dropped: 9_900, failed: 0, queued: 100 }, 'the oldest beyond 100 are dropped and counted')
  t.equal(requests, 1, 'one request in flight at a time')
  const flushStarted = performance.now()
  t.equal(await writer.flush(300), false, 'time ran out')
  t.ok(performance.now() - flushStarted < 1500, 'flush is bounded')
  await writer.close(100)
  t.equal(writer.counts().logs.dropped, 9_900 + 100, 'close drops what is left, counted')
  writer.log([line])
  t.equal(writer.counts().logs.dropped, 10_001, 'a closed writer takes nothing')
  for (const res of held) res.end()
})
