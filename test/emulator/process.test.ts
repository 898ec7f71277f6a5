// 'process' mode: each execution runs its container's command as a local child process.
import t from 'tap'
import { createJob, nodeCommand, rig } from './helpers.ts'

const r = await rig(t, { executions: 'process', processEnv: { FROM_EMULATOR: 'yes' } })

const executionName = (op: { metadata?: unknown }): string => (op.metadata as { name: string }).name

t.test('non-zero exit → failed execution with counts, conditions, completionTime, logUri and logs', async t => {
  const name = await createJob(r, 'exit-three', { command: nodeCommand('console.error("boom"); process.exit(3)') })
  const [op] = await r.jobs.runJob({ name })
  const error = await op.promise().catch((e: unknown) => e)
  t.equal((error as { code: number }).code, 9)
  const [execution] = await r.executions.getExecution({ name: executionName(op) })
  t.equal(execution.failedCount, 1)
  t.equal(execution.succeededCount, 0)
  t.equal(execution.runningCount, 0)
  t.equal(execution.taskCount, 1)
  t.ok(Number(execution.completionTime?.seconds) >= Number(execution.startTime?.seconds))
  t.match(execution.conditions?.find(c => c.type === 'Completed'), {
    state: 'CONDITION_FAILED',
    executionReason: 'NON_ZERO_EXIT_CODE',
    message: /^Task exit-three-[a-z0-9]{5}-task0 failed with message: The container exited with an error\.$/
  })
  t.match(execution.logUri, /project=p/)
  t.match(r.emu.logs(executionName(op)), 'boom')
})

t.test('exit 0 → succeeded; op.promise() resolves; the task sees its env', async t => {
  r.emu.putSecret('p', 'api-key', 'v1')
  r.emu.putSecret('p', 'api-key', 'v2')
  const script = 'for (const k of ["A", "B", "KEY", "OLD_KEY", "FROM_EMULATOR", "CLOUD_RUN_EXECUTION", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT"]) ' +
    'console.log(`${k}=${process.env[k]}`); console.log("ARGS=" + process.argv.slice(1).join(","))'
  const name = await createJob(r, 'env-check', {
    command: nodeCommand(script),
    args: ['x', 'y'],
    env: [
      { name: 'A', value: 'from-job' },
      { name: 'KEY', valueSource: { secretKeyRef: { secret: 'api-key', version: 'latest' } } },
      { name: 'OLD_KEY', valueSource: { secretKeyRef: { secret: 'projects/p/secrets/api-key', version: '1' } } }
    ]
  })
  const [op] = await r.jobs.runJob({ name, overrides: { containerOverrides: [{ env: [{ name: 'B', value: 'from-override' }] }] } })
  const [result] = await op.promise()
  t.equal((result as { succeededCount: number }).succeededCount, 1)
  const execution = executionName(op)
  const logs = r.emu.logs(execution)
  t.match(logs, 'A=from-job')
  t.match(logs, 'B=from-override')
  t.match(logs, 'KEY=v2')
  t.match(logs, 'OLD_KEY=v1')
  t.match(logs, 'FROM_EMULATOR=yes')
  t.match(logs, `CLOUD_RUN_EXECUTION=${execution.split('/').at(-1)}`)
  t.match(logs, 'CLOUD_RUN_TASK_INDEX=0')
  t.match(logs, 'CLOUD_RUN_TASK_COUNT=1')
  t.match(logs, 'ARGS=x,y')
  t.match(r.emu.execution(execution)?.conditions.find(c => c.type === 'Completed'), { state: 'CONDITION_SUCCEEDED' })
})

t.test('logs keep only the last 256 KiB', async t => {
  const name = await createJob(r, 'chatty', { command: nodeCommand('process.stdout.write("x".repeat(300 * 1024)); console.log("END")') })
  const [op] = await r.jobs.runJob({ name })
  await r.emu.waitForExecution(executionName(op))
  const logs = r.emu.logs(executionName(op))
  t.equal(Buffer.byteLength(logs), 256 * 1024)
  t.ok(logs.endsWith('xEND\n'))
})

t.test('the task timeout kills the process', async t => {
  const name = await createJob(r, 'sleeper', { command: nodeCommand('setTimeout(() => {}, 60_000)') }, { timeout: '1s' })
  const started = Date.now()
  const [op] = await r.jobs.runJob({ name })
  const execution = await r.emu.waitForExecution(executionName(op))
  t.ok(Date.now() - started < 10_000, 'did not wait for the process')
  t.equal(execution.failedCount, 1)
  t.match(execution.conditions.find(c => c.type === 'Completed'), { state: 'CONDITION_FAILED', message: /The configured timeout was reached\./ })
})

t.test('a timeout override is what counts', async t => {
  const name = await createJob(r, 'override-timeout', { command: nodeCommand('setTimeout(() => {}, 60_000)') })
  const [op] = await r.jobs.runJob({ name, overrides: { timeout: { seconds: 0, nanos: 300_000_000 } } })
  const execution = await r.emu.waitForExecution(executionName(op))
  t.equal(execution.template.timeout, '0.3s')
  t.match(execution.conditions.find(c => c.type === 'Completed')?.message, /timeout/)
})

t.test('cancelExecution kills the process', async t => {
  const name = await createJob(r, 'cancelled', { command: nodeCommand('console.log("started"); setTimeout(() => console.log("survived"), 700)') })
  const [op] = await r.jobs.runJob({ name })
  await new Promise(resolve => setTimeout(resolve, 300))
  await r.executions.cancelExecution({ name: executionName(op) })
  await new Promise(resolve => setTimeout(resolve, 900))
  t.notMatch(r.emu.logs(executionName(op)), 'survived')
  t.equal(r.emu.execution(executionName(op))?.cancelledCount, 1)
})

t.test('a command that cannot start fails the execution', async t => {
  const name = await createJob(r, 'no-binary', { command: ['/nonexistent/binary'] })
  const [op] = await r.jobs.runJob({ name })
  const execution = await r.emu.waitForExecution(executionName(op))
  t.match(execution.conditions.find(c => c.type === 'Completed'), { state: 'CONDITION_FAILED', message: /Application failed to start/ })
  const bare = await createJob(r, 'no-command')
  const [bareOp] = await r.jobs.runJob({ name: bare })
  t.match((await r.emu.waitForExecution(executionName(bareOp))).conditions.find(c => c.type === 'Completed')?.message, /no command/)
})

t.test('close() kills running processes', async t => {
  const s = await (await import('./helpers.ts')).rig(t, { executions: 'process' })
  const name = await createJob(s, 'orphan', { command: nodeCommand('console.log(process.pid); setTimeout(() => {}, 60_000)') })
  const [op] = await s.jobs.runJob({ name })
  let pid = 0
  while (!pid) {
    await new Promise(resolve => setTimeout(resolve, 20))
    pid = Number.parseInt(s.emu.logs(executionName(op)))
  }
  await s.emu.close()
  await new Promise(resolve => setTimeout(resolve, 200))
  t.throws(() => process.kill(pid, 0), { code: 'ESRCH' })
})
