import t from 'tap'
import { CLOUD_RUN_JOB_ID, perRunJobName, reuseJobId } from '../../src/jobconfig/names.ts'

t.test('per-run job names follow Prefect\'s v2 rule', async (t) => {
  t.equal(perRunJobName('crimson-wombat', 'abc1234'), 'crimson-wombat-abc1234')
  t.equal(perRunJobName('Café Ünïcödé', '0000000'), 'cafe-unicode-0000000')
  const long = perRunJobName('an-extremely-long-flow-run-name-that-goes-on-and-on-well-past-the-limit', 'abc1234')
  t.equal(long, 'an-extremely-long-flow-run-name-that-goes-on-and-on-wel-abc1234')
  t.ok(long.length <= 63)
})

t.test('where Prefect\'s id would be invalid, pushpool\'s is not', async (t) => {
  t.equal(perRunJobName('🚀 ✨', 'abc1234'), 'flow-run-abc1234', 'Prefect: None-abc1234')
  t.equal(perRunJobName('2024-05-01 backfill', 'abc1234'), 'flow-run-2024-05-01-backfill-abc1234', 'Prefect: 2024-05-01-backfill-abc1234')
  for (const name of ['🚀', '9', '---', `9${'x'.repeat(80)}`]) t.match(perRunJobName(name, 'abc1234'), CLOUD_RUN_JOB_ID, name)
})

t.test('the suffix must be 7 hex digits', async (t) => {
  t.throws(() => perRunJobName('x', 'ABC1234'))
  t.throws(() => perRunJobName('x', 'abc123'))
})

t.test('reuse ids are stable, readable and leave room for execution names', async (t) => {
  const hash = 'f00dfacecafe0123456789abcdef'
  t.equal(reuseJobId('Nightly ETL', hash), 'nightly-etl-f00dfacecafe')
  t.equal(reuseJobId('Nightly ETL', hash), reuseJobId('Nightly ETL', hash))
  const long = reuseJobId('x'.repeat(100), hash)
  t.ok(long.length <= 57, `${long} leaves 6 characters for "-xxxxx"`)
  t.match(long, CLOUD_RUN_JOB_ID)
  t.equal(reuseJobId('42', hash), 'job-42-f00dfacecafe')
  t.equal(reuseJobId('🚀', hash), 'job-f00dfacecafe')
  t.equal(reuseJobId('pool', 'F00DFACECAFE'), 'pool-f00dfacecafe')
  t.throws(() => reuseJobId('pool', 'short'))
})
