// The end of each execution pushed as Cloud Run's System Event audit entry would reach pushpool
// through a log sink → Pub/Sub topic → push subscription with an OIDC token.
import t from 'tap'
import { GoogleIdTokenVerifier } from '../../src/auth/google-id-token.ts'
import type { LogEntry, PushEnvelope } from '../../src/emulator/index.ts'
import { createJob, nodeCommand, rig } from './helpers.ts'
import { startHttpWorker } from './http-worker.ts'

const PUSHER = 'execution-events@p.iam.gserviceaccount.com'
const AUDIENCE = 'https://pushpool.example.run.app/v1/executions/ended'

const worker = await startHttpWorker(t)
const r = await rig(t, {
  executions: 'process',
  executionEndPush: { url: `${worker.url}/v1/executions/ended`, audience: AUDIENCE, serviceAccountEmail: PUSHER, minBackoffMs: 50 }
})

const executionName = (op: { metadata?: unknown }): string => (op.metadata as { name: string }).name
const entryOf = (envelope: PushEnvelope): LogEntry => JSON.parse(Buffer.from(envelope.message.data, 'base64').toString()) as LogEntry

async function runToEnd (jobId: string, script: string, timeout?: string): Promise<string> {
  const job = await createJob(r, jobId, { command: nodeCommand(script) }, timeout ? { timeout } : {})
  const [op] = await r.jobs.runJob({ name: job })
  return executionName(op)
}

t.test('a failed execution: one push, Pub/Sub\'s envelope around the audit entry, with a verifiable token', async t => {
  const name = await runToEnd('fails', 'console.error("boom"); process.exit(3)')
  const delivery = await r.emu.waitForExecutionEndPush(name)
  const request = worker.requests.find(req => req.body.toString() === JSON.stringify(delivery.body))!
  t.ok(request, 'the endpoint got it')
  t.equal(request.method, 'POST')
  t.equal(request.path, '/v1/executions/ended')
  t.equal(request.headers['content-type'], 'application/json')
  const identity = await new GoogleIdTokenVerifier({ certsUrl: r.emu.certsUrl, audience: AUDIENCE })
    .verify(String(request.headers.authorization).replace(/^Bearer /, ''))
  t.same(identity, { email: PUSHER, emailVerified: true })

  const envelope = JSON.parse(request.body.toString()) as PushEnvelope
  const id = name.split('/').at(-1)
  t.equal(envelope.subscription, 'projects/p/subscriptions/execution-end')
  t.equal(envelope.message.messageId, envelope.message.message_id)
  t.equal(envelope.message.publishTime, envelope.message.publish_time)
  t.match(envelope.message.messageId, /^\d+$/)
  const entry = entryOf(envelope)
  t.equal(envelope.message.attributes['logging.googleapis.com/timestamp'], entry.timestamp)
  t.match(entry, {
    logName: 'projects/p/logs/cloudaudit.googleapis.com%2Fsystem_event',
    resource: { type: 'cloud_run_job', labels: { project_id: 'p', job_name: 'fails', location: 'us-central1' } },
    severity: 'ERROR',
    labels: { 'run.googleapis.com/execution_name': id },
    protoPayload: {
      '@type': 'type.googleapis.com/google.cloud.audit.AuditLog',
      serviceName: 'run.googleapis.com',
      methodName: '/Jobs.RunJob',
      resourceName: `namespaces/p/executions/${id}`,
      status: { code: 10, message: new RegExp(`^Execution ${id} has failed to complete\\. Task ${id}-task0 failed`) },
      response: {
        kind: 'Execution',
        metadata: { name: id, labels: { 'run.googleapis.com/job': 'fails' } },
        status: {
          failedCount: 1,
          completionTime: String,
          conditions: [{ type: 'Completed', status: 'False', reason: 'NonZeroExitCode' }]
        }
      }
    }
  })
  t.equal(r.emu.executionEndPushes().filter(d => entryOf(d.body).labels?.['run.googleapis.com/execution_name'] === id).length, 1, 'pushed once')
})

t.test('succeeded, cancelled and timed out executions are pushed too, each as it ends', async t => {
  const succeeded = await runToEnd('succeeds', 'console.log("ok")')
  const timedOut = await runToEnd('times-out', 'setTimeout(() => {}, 60_000)', '1s')
  const cancelled = await runToEnd('is-cancelled', 'setTimeout(() => {}, 60_000)')
  await r.executions.cancelExecution({ name: cancelled })
  const entries = await Promise.all([succeeded, timedOut, cancelled].map(async name => entryOf((await r.emu.waitForExecutionEndPush(name)).body)))
  t.match(entries[0], { severity: 'INFO', protoPayload: { status: { message: /has completed successfully\.$/ }, response: { status: { succeededCount: 1 } } } })
  t.notOk('code' in (entries[0].protoPayload!.status as object), 'success carries no error code')
  t.match(entries[1], { severity: 'ERROR', protoPayload: { status: { code: 10, message: /The configured timeout was reached/ } } })
  t.match(entries[2], {
    severity: 'ERROR',
    protoPayload: { status: { code: 1 }, response: { status: { cancelledCount: 1, conditions: [{ type: 'Completed', reason: 'Cancelled' }] } } }
  })
})

t.test('the pushed entry is the one entries.list serves', async t => {
  const name = await runToEnd('listed', 'process.exit(0)')
  const pushed = entryOf((await r.emu.waitForExecutionEndPush(name)).body)
  const res = await fetch(`${r.emu.httpUrl}/v2/entries:list`, {
    method: 'POST',
    headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
    body: JSON.stringify({
      resourceNames: ['projects/p'],
      filter: `log_id("cloudaudit.googleapis.com/system_event") protoPayload.methodName="/Jobs.RunJob" protoPayload.resourceName="namespaces/p/executions/${name.split('/').at(-1)}"`
    })
  })
  const { entries } = await res.json() as { entries: LogEntry[] }
  t.same(entries, [pushed])
})

t.test('an unacknowledged push is retried with backoff until the endpoint acknowledges it', async t => {
  const before = worker.requests.length
  worker.answer(n => n - before < 2 ? 503 : 204)
  t.teardown(() => worker.answer(() => 200))
  const name = await runToEnd('flaky-endpoint', 'process.exit(0)')
  const acked = await r.emu.waitForExecutionEndPush(name)
  t.equal(acked.status, 204)
  const attempts = r.emu.executionEndPushes().filter(d => d.body.message.messageId === acked.body.message.messageId)
  t.same(attempts.map(d => [d.status, d.acknowledged]), [[503, false], [503, false], [204, true]])
  t.ok(Date.parse(attempts[2].deliveryTime) - Date.parse(attempts[1].deliveryTime) >= 100, 'the second retry waited twice the first')
})

t.test('off by default', async t => {
  const plain = await rig(t, { executions: 'succeed' })
  const job = await createJob(plain, 'quiet')
  const [op] = await plain.jobs.runJob({ name: job })
  await op.promise()
  t.same(plain.emu.executionEndPushes(), [])
  await t.rejects(plain.emu.waitForExecutionEndPush(executionName(op)), /without executionEndPush/)
  t.ok(plain.emu.logEntries().some(e => e.logName.endsWith('cloudaudit.googleapis.com%2Fsystem_event')), 'the audit entry is logged all the same')
})
