import t from 'tap'
import { mergeLabelsForGcp, prefectLabels, pythonUtcIsoformat, sanitizeLabelsForGcp } from '../../src/jobconfig/labels.ts'
import type { FlowRun, WorkPool } from '../../src/prefect/types.ts'

t.test('sanitises keys and values to GCP label rules', async (t) => {
  t.same(sanitizeLabelsForGcp({
    'prefect.io/flow-run-name': 'Nightly ETL #42',
    'Team.Name/Owner': 'Data Platform',
    '123-starts-with-digit': 'x',
    '---': 'dropped',
    long: 'v'.repeat(80),
    emoji: 'a🚀b'
  }), {
    'prefect-io-flow-run-name': 'nightly-etl--42',
    'team-name-owner': 'data-platform',
    'starts-with-digit': 'x',
    long: 'v'.repeat(63),
    emoji: 'a-b'
  })
})

t.test('template labels win, are kept verbatim and never dropped; Prefect\'s last labels go first past 64', async (t) => {
  const existing = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`t${i}`, `v${i}`]))
  existing['prefect-io-a'] = 'Pinned As Is'
  const merged = mergeLabelsForGcp({ 'prefect.io/a': 'a', 'prefect.io/b': 'b', 'prefect.io/c': 'c', 'prefect.io/d': 'd', 'prefect.io/e': 'e', 'prefect.io/f': 'f' }, existing)
  t.equal(Object.keys(merged).length, 64)
  t.equal(merged['prefect-io-a'], 'Pinned As Is')
  t.same(Object.keys(merged).filter(key => key.startsWith('prefect-io-')), ['prefect-io-a', 'prefect-io-b', 'prefect-io-c', 'prefect-io-d'])
})

t.test('Prefect\'s labels, in priority order', async (t) => {
  const flowRun = { id: 'fr-id', name: 'crimson-wombat' } as FlowRun
  const workPool = { id: 'pool-id', name: 'pool' } as WorkPool
  t.same(Object.keys(prefectLabels({ flowRun, workPool, workerName: 'pushpool', flow: { id: 'f', name: 'flow' }, deployment: { id: 'd', name: 'dep', flow_id: 'f', updated: '2024-05-01T12:00:00Z', job_variables: null, work_pool_name: null, work_queue_name: null }, prefectVersion: '3.8.8' })), [
    'prefect.io/flow-run-id', 'prefect.io/flow-run-name', 'prefect.io/version', 'prefect.io/work-pool-name', 'prefect.io/work-pool-id',
    'prefect.io/worker-name', 'prefect.io/flow-id', 'prefect.io/flow-name', 'prefect.io/deployment-id', 'prefect.io/deployment-name',
    'prefect.io/deployment-updated'
  ])
  t.same(Object.keys(prefectLabels({ flowRun, workPool, workerName: 'pushpool', flow: null, deployment: null, prefectVersion: '3.8.8' })).length, 6)
})

t.test('deployment timestamps are written as Python\'s isoformat() in UTC', async (t) => {
  t.equal(pythonUtcIsoformat('2024-05-01T12:00:00.123456Z'), '2024-05-01T12:00:00.123456+00:00')
  t.equal(pythonUtcIsoformat('2024-05-01T12:00:00.5Z'), '2024-05-01T12:00:00.500000+00:00')
  t.equal(pythonUtcIsoformat('2024-05-01T12:00:00Z'), '2024-05-01T12:00:00+00:00')
  t.equal(pythonUtcIsoformat('2024-05-01T01:30:00+02:00'), '2024-04-30T23:30:00+00:00')
  t.equal(pythonUtcIsoformat('2024-05-01T12:00:00.000000'), '2024-05-01T12:00:00+00:00')
})
