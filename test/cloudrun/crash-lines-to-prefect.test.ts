// The two halves joined as the dispatcher is to join them: a REAL local execution prints to stderr
// and exits 3; its last lines are read from the emulator's Cloud Logging, redacted, and written into
// the run's logs on a REAL Prefect server through the batched writer.
import t from 'tap'
import { lastLines } from '../../src/cloudrun/execution-logs.ts'
import { PrefectActivityWriter } from '../../src/prefect/activity-writer.ts'
import { PrefectClient } from '../../src/prefect/client.ts'
import { CONTAINER_LOGGER, LOG_LEVEL, containerLines } from '../../src/prefect/flow-run-logs.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { createJob, nodeCommand, rig } from '../emulator/helpers.ts'

const r = await rig(t, { executions: 'process' })
const server = await prefectServer()
const fixtures = new PrefectFixtures(server.apiUrl, server.authString)
const client = new PrefectClient({ apiUrl: server.apiUrl, authString: server.authString, apiKey: null })
t.teardown(() => { client.close() })

t.test('a crashed run\'s Prefect logs carry its container\'s stderr, secrets blanked', async t => {
  const { deploymentId } = await fixtures.servedPool('crash-lines', 'p')
  const run = await fixtures.createFlowRun(deploymentId)
  const createTime = new Date()
  const job = await createJob(r, 'crash-lines', {
    command: nodeCommand('console.error("ImportError: cannot import name \'flow\' (PREFECT_API_KEY=pnu_abcdefghijklmnop)"); process.exit(3)')
  })
  const [operation] = await r.jobs.runJob({ name: job })
  const execution = (operation.metadata as unknown as { name: string }).name
  await r.emu.waitForExecution(execution)

  const output = await lastLines({ project: 'p', region: 'us-central1', job: 'crash-lines', execution, createTime }, { authClient: null, baseUrl: r.emu.httpUrl })
  t.equal(output.exitCode, 3)
  const writer = new PrefectActivityWriter({ client })
  writer.log(containerLines(run.id, { job: 'crash-lines', execution: execution.split('/').at(-1)!, ...output, logsUrl: null }))
  t.equal(await writer.flush(20_000), true)
  await writer.close()

  const logs = await fixtures.request<Array<{ name: string, level: number, message: string }>>('POST', '/logs/filter',
    { logs: { flow_run_id: { any_: [run.id] } }, sort: 'TIMESTAMP_ASC' })
  t.match(logs, [
    { name: CONTAINER_LOGGER, level: LOG_LEVEL.ERROR, message: /^Container logs from Cloud Run execution 'crash-lines-\w+' of job 'crash-lines', its last 2 lines/ },
    { name: CONTAINER_LOGGER, level: LOG_LEVEL.ERROR, message: '[stderr] ImportError: cannot import name \'flow\' (PREFECT_API_KEY=[redacted])' },
    { name: CONTAINER_LOGGER, level: LOG_LEVEL.WARNING, message: '[system] Container called exit(3).' }
  ])
  t.equal(logs.length, 3)
})
