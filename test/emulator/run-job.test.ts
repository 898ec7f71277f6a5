// RunJob and executions in 'hold' mode: the test decides when and how each execution ends.
import t from 'tap'
import { createJob, errorCode, PARENT, rig } from './helpers.ts'

const r = await rig(t, { executions: 'hold', missingImagePattern: /does-not-exist/ })

const executionName = (op: { metadata?: unknown }): string => (op.metadata as { name: string }).name

t.test('runJob: the execution name is in op.metadata at once; overrides shape its template', async t => {
  const name = await createJob(r, 'overrides', {
    command: ['prefect'],
    args: ['flow-run', 'execute'],
    env: [{ name: 'KEEP', value: 'k' }, { name: 'REPLACE', value: 'old' }]
  })
  const [op] = await r.jobs.runJob({
    name,
    overrides: {
      containerOverrides: [{ env: [{ name: 'REPLACE', value: 'new' }, { name: 'ADDED', value: 'a' }], args: ['other'] }],
      timeout: { seconds: 3600 },
      taskCount: 1
    }
  })
  t.equal(op.done, false)
  t.match(op.name, /^projects\/p\/locations\/us-central1\/operations\/[0-9a-f-]{36}$/)
  const execution = executionName(op)
  t.match(execution, new RegExp(`^${name}/executions/overrides-[a-z0-9]{5}$`))

  const [got] = await r.executions.getExecution({ name: execution })
  t.equal(got.job, 'overrides')
  t.same(got.template?.containers?.[0].env?.map(e => [e.name, e.value]), [['KEEP', 'k'], ['REPLACE', 'new'], ['ADDED', 'a']])
  t.same(got.template?.containers?.[0].args, ['other'])
  t.same(got.template?.containers?.[0].command, ['prefect'])
  t.equal(got.template?.timeout?.seconds, '3600')
  t.equal(got.runningCount, 1)
  t.notOk(got.completionTime, 'running: no completionTime')
  t.ok(got.startTime)
  t.match(got.conditions?.find(c => c.type === 'Completed'), { state: 'CONDITION_RECONCILING' })
  t.match(got.logUri, /^https:\/\/console\.cloud\.google\.com\/logs\/viewer\?project=p&resource=cloud_run_job/)

  const [job] = await r.jobs.getJob({ name })
  t.equal(Number(job.executionCount), 1)
  t.equal(job.latestCreatedExecution?.name, execution)
  t.equal(job.latestCreatedExecution?.completionStatus, 'EXECUTION_RUNNING')
  r.emu.finishExecution(execution, { exitCode: 0 })
})

t.test('clearArgs removes the job\'s args', async t => {
  const name = await createJob(r, 'clear-args', { args: ['a', 'b'] })
  const [op] = await r.jobs.runJob({ name, overrides: { containerOverrides: [{ clearArgs: true }] } })
  t.same(r.emu.execution(executionName(op))?.template.containers?.[0].args, undefined)
  const unknown = await r.jobs.runJob({ name, overrides: { containerOverrides: [{ name: 'sidecar', args: ['x'] }] } }).catch((e: unknown) => e)
  t.equal(errorCode(unknown), 3, 'an override for a container the job lacks')
})

t.test('finishing with exit 0: op.promise() resolves with the succeeded execution', async t => {
  const name = await createJob(r, 'succeeds')
  const [op] = await r.jobs.runJob({ name })
  setTimeout(() => r.emu.finishExecution(executionName(op), { exitCode: 0 }), 50)
  const [result] = await op.promise()
  t.equal((result as { name: string }).name, executionName(op))
  const [got] = await r.executions.getExecution({ name: executionName(op) })
  t.equal(got.succeededCount, 1)
  t.equal(got.runningCount, 0)
  t.ok(got.completionTime)
  t.match(got.conditions?.find(c => c.type === 'Completed'), { state: 'CONDITION_SUCCEEDED' })
  const [job] = await r.jobs.getJob({ name })
  t.equal(job.latestCreatedExecution?.completionStatus, 'EXECUTION_SUCCEEDED')
  t.ok(job.latestCreatedExecution?.completionTime)
})

t.test('finishing with a non-zero exit: failed execution, op.promise() rejects', async t => {
  const name = await createJob(r, 'fails')
  const [op] = await r.jobs.runJob({ name })
  const execution = executionName(op)
  r.emu.finishExecution(execution, { exitCode: 3 })
  const error = await op.promise().catch((e: unknown) => e)
  t.equal(errorCode(error), 9)
  t.match((error as Error).message, /Task fails-[a-z0-9]{5}-task0 failed with message: The container exited with an error\./)
  const [got] = await r.executions.getExecution({ name: execution })
  t.equal(got.failedCount, 1)
  t.match(got.conditions?.find(c => c.type === 'Completed'), { state: 'CONDITION_FAILED', executionReason: 'NON_ZERO_EXIT_CODE' })
  t.throws(() => r.emu.finishExecution(execution, { exitCode: 0 }), /already finished/)
})

t.test('finishing with a timeout reports Cloud Run\'s timeout message', async t => {
  const name = await createJob(r, 'times-out')
  const [op] = await r.jobs.runJob({ name })
  r.emu.finishExecution(executionName(op), { timeout: true })
  const completed = r.emu.execution(executionName(op))?.conditions.find(c => c.type === 'Completed')
  t.match(completed, { state: 'CONDITION_FAILED', message: /The configured timeout was reached\./ })
})

t.test('cancelExecution ends it CANCELLED; the RunJob operation fails', async t => {
  const name = await createJob(r, 'cancel-me')
  const [op] = await r.jobs.runJob({ name })
  const [cancelOp] = await r.executions.cancelExecution({ name: executionName(op) })
  t.equal(cancelOp.done, true)
  const [got] = await r.executions.getExecution({ name: executionName(op) })
  t.equal(got.cancelledCount, 1)
  t.equal(got.runningCount, 0)
  t.ok(got.completionTime)
  t.match(got.conditions?.find(c => c.type === 'Completed'), { executionReason: 'CANCELLED' })
  t.equal(errorCode(await op.promise().catch((e: unknown) => e)), 1)
  const [job] = await r.jobs.getJob({ name })
  t.equal(job.latestCreatedExecution?.completionStatus, 'EXECUTION_CANCELLED')
  const again = await r.executions.cancelExecution({ name: executionName(op) }).catch((e: unknown) => e)
  t.equal(errorCode(again), 9, 'cancelling a finished execution')
})

t.test('listExecutions: newest first, per job or across jobs with jobs/-', async t => {
  const a = await createJob(r, 'list-a')
  const b = await createJob(r, 'list-b')
  const [first] = await r.jobs.runJob({ name: a })
  const [second] = await r.jobs.runJob({ name: a })
  const [third] = await r.jobs.runJob({ name: b })
  const [ofA] = await r.executions.listExecutions({ parent: a })
  t.same(ofA.map(e => e.name), [executionName(second), executionName(first)])
  const [all] = await r.executions.listExecutions({ parent: `${PARENT}/jobs/-` })
  t.equal(all[0].name, executionName(third))
  t.ok(all.length >= 3)
  const [page1, next] = await r.executions.listExecutions({ parent: a, pageSize: 1 }, { autoPaginate: false })
  t.same(page1.map(e => e.name), [executionName(second)])
  const [page2, last] = await r.executions.listExecutions(next!, { autoPaginate: false })
  t.same(page2.map(e => e.name), [executionName(first)])
  t.equal(last, null, 'no page after the last')
  t.equal(errorCode(await r.executions.listExecutions({ parent: `${PARENT}/jobs/none` }).catch((e: unknown) => e)), 5)
  t.equal(errorCode(await r.executions.getExecution({ name: a }).catch((e: unknown) => e)), 3, 'a job name is no execution name')
  for (const op of [first, second, third]) r.emu.finishExecution(executionName(op), { exitCode: 0 })
})

t.test('deleteJob refuses while an execution runs, then deletes the job and its executions', async t => {
  const name = await createJob(r, 'busy')
  const [op] = await r.jobs.runJob({ name })
  const error = await r.jobs.deleteJob({ name }).catch((e: unknown) => e)
  t.equal(errorCode(error), 9)
  t.ok(r.emu.jobs().some(j => j.name === name))
  r.emu.finishExecution(executionName(op), { exitCode: 0 })
  await r.jobs.deleteJob({ name })
  t.equal(r.emu.execution(executionName(op)), undefined)
})

t.test('deleteExecution removes it (stopping it first if it runs)', async t => {
  const name = await createJob(r, 'delete-exec')
  const [op] = await r.jobs.runJob({ name })
  const [deleteOp] = await r.executions.deleteExecution({ name: executionName(op) })
  t.equal(deleteOp.done, true)
  t.equal(errorCode(await r.executions.getExecution({ name: executionName(op) }).catch((e: unknown) => e)), 5)
  t.equal(errorCode(await op.promise().catch((e: unknown) => e)), 1, 'its RunJob operation ends cancelled')
})

t.test('an image matching missingImagePattern fails with CONTAINER_MISSING', async t => {
  const name = await createJob(r, 'missing-image', { image: 'us-docker.pkg.dev/p/r/does-not-exist:1' })
  const [op] = await r.jobs.runJob({ name })
  const error = await op.promise().catch((e: unknown) => e)
  t.match((error as Error).message, /Image 'us-docker.pkg.dev\/p\/r\/does-not-exist:1' not found/)
  const execution = r.emu.execution(executionName(op))
  t.match(execution?.conditions.find(c => c.type === 'Completed'), { state: 'CONDITION_FAILED', reason: 'CONTAINER_MISSING' })
  t.ok(execution?.completionTime)
})

t.test('an unresolvable secretKeyRef fails the execution, naming the secret', async t => {
  const name = await createJob(r, 'no-secret', { env: [{ name: 'TOKEN', valueSource: { secretKeyRef: { secret: 'absent', version: 'latest' } } }] })
  const [op] = await r.jobs.runJob({ name })
  const completed = (await r.emu.waitForExecution(executionName(op))).conditions.find(c => c.type === 'Completed')
  t.match(completed, { state: 'CONDITION_FAILED', reason: 'SECRETS_ACCESS_CHECK_FAILED', message: /projects\/p\/secrets\/absent\/versions\/latest/ })
})

t.test('operations: get, list and delete', async t => {
  // The generated request types are classes (with toJSON); the client takes plain objects.
  type OperationRequest = Parameters<typeof r.jobs.deleteOperation>[0] & Parameters<typeof r.jobs.listOperationsAsync>[0]
  const request = (fields: { name: string }) => fields as OperationRequest
  const name = await createJob(r, 'ops')
  const [op] = await r.jobs.runJob({ name })
  const fetched = await r.jobs.checkRunJobProgress(op.name!)
  t.equal(fetched.done, false)
  t.equal((fetched.metadata as { name: string }).name, executionName(op))
  const listed: string[] = []
  for await (const operation of r.jobs.listOperationsAsync(request({ name: PARENT }))) listed.push(operation.name ?? '')
  t.ok(listed.includes(op.name!))
  t.ok(listed.every(name => name.startsWith(`${PARENT}/operations/`)))
  r.emu.finishExecution(executionName(op), { exitCode: 0 })
  t.equal((await r.jobs.checkRunJobProgress(op.name!)).done, true)
  await r.jobs.deleteOperation(request({ name: op.name! }))
  t.equal(errorCode(await r.jobs.checkRunJobProgress(op.name!).catch((e: unknown) => e)), 5)
})

t.test('\'succeed\' mode finishes executions at once', async t => {
  const s = await (await import('./helpers.ts')).rig(t, { executions: 'succeed' })
  const name = await createJob(s, 'instant')
  const [op] = await s.jobs.runJob({ name })
  const [result] = await op.promise()
  t.equal((result as { succeededCount: number }).succeededCount, 1)
})
