// The pure parts of the worker's events and messages, against Prefect's own Python where it has an
// answer: the worker-name slug (python-slugify) and the exit-code table. The events themselves are
// compared with Prefect's worker on a real server in activity-writer.test.ts.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { infrastructureExitInfo, nonZeroExitMessage } from '../../src/prefect/exit-codes.ts'
import { claimedLines } from '../../src/prefect/flow-run-logs.ts'
import type { FlowRun } from '../../src/prefect/types.ts'
import { executedFlowRunEvent, runRelatedResources, submittedFlowRunEvent, workerResource, type RunObjects } from '../../src/prefect/worker-events.ts'
import { testVenv } from '../harness/test-env.ts'

const execFileAsync = promisify(execFile)

async function python (script: string, input: unknown): Promise<unknown> {
  const { python } = await testVenv()
  const { stdout } = await execFileAsync(python, ['-c', script, JSON.stringify(input)], { env: { ...process.env, PREFECT_LOGGING_TO_API_ENABLED: 'false' } })
  return JSON.parse(stdout)
}

t.test('the worker resource id slugs the name as Prefect does', async t => {
  const names = ['pushpool', 'PushPool', 'push.pool_01', 'a--b..c__d', '9lives', 'x-', 'Z.Z.Z']
  const slugs = await python('import json, sys; from slugify import slugify; print(json.dumps([slugify(n) for n in json.loads(sys.argv[1])]))', names)
  t.same(names.map(name => workerResource({ name, type: 'cloud-run-v2', prefectVersion: '3.8.8' })['prefect.resource.id']),
    (slugs as string[]).map(slug => `prefect.worker.cloud-run-v2.${slug}`))
})

t.test('exit codes explained in Prefect\'s words', async t => {
  const codes = [0, -9, -15, 1, 2, 3, 125, 126, 127, 137, 143, 247, 0xC000013A, 255]
  const reference = await python(
    'import json, sys; from prefect._internal.infrastructure_exit_codes import get_infrastructure_exit_info as g; ' +
    'print(json.dumps([[g(c).explanation, g(c).resolution, g(c).log_level] for c in json.loads(sys.argv[1])]))', codes)
  t.same(codes.map(code => { const info = infrastructureExitInfo(code); return [info.explanation, info.resolution, info.level] }), reference)
  t.equal(nonZeroExitMessage(137), 'Flow run infrastructure exited with non-zero status code 137. Process was killed, likely due to an out-of-memory (OOM) condition.')
})

const flowRun = { id: 'fr', name: 'run', tags: [] } as unknown as FlowRun
const objects: RunObjects = { flowRun, deployment: null, flow: null, workPool: null }
const worker = { name: 'pushpool', type: 'cloud-run-v2', prefectVersion: '3.8.8' }

t.test('objects unknown are left out; too many tags are cut so Prefect takes the event', async t => {
  t.same(runRelatedResources(objects), [{ 'prefect.resource.id': 'prefect.flow-run.fr', 'prefect.resource.role': 'flow-run', 'prefect.resource.name': 'run' }])
  const tagged = { ...objects, flowRun: { ...flowRun, tags: Array.from({ length: 120 }, (_, i) => `t${String(i).padStart(3, '0')}`) } }
  const related = submittedFlowRunEvent(worker, tagged).related
  t.equal(related.length, 100, 'Prefect\'s maximum of related resources')
  t.equal(related[0]['prefect.resource.role'], 'flow-run', 'the run stays')
  t.equal(related.filter(r => r['prefect.resource.role'] === 'tag').length, 99)
})

t.test('follows is set only within five minutes of the earlier event, as emit_event sets it', async t => {
  const submitted = submittedFlowRunEvent(worker, objects, new Date('2026-12-06T10:00:00Z'))
  const soon = executedFlowRunEvent(worker, objects, { identifier: 'j', statusCode: 0 }, submitted, new Date('2026-12-06T10:04:59Z'))
  const late = executedFlowRunEvent(worker, objects, { identifier: 'j', statusCode: 0 }, submitted, new Date('2026-12-06T10:05:01Z'))
  t.equal(soon.follows, submitted.id)
  t.notOk('follows' in late)
  t.match(soon.related[0], { 'prefect.infrastructure.identifier': 'j', 'prefect.infrastructure.status-code': '0' })
})

t.test('line stamps only grow, even for lines built at the same instant', async t => {
  const at = new Date('2026-12-06T10:00:00.123Z')
  const stamps = [...claimedLines('fr', 'a', at), ...claimedLines('fr', 'b', at), ...claimedLines('fr', 'c', new Date(at.getTime() - 1000))].map(l => l.timestamp)
  t.match(stamps[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
  t.same(stamps, [...stamps].sort())
  t.equal(new Set(stamps).size, 3)
})
