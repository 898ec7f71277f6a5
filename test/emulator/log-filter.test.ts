// The Logging query language subset, as pure decisions over entries (no peer needed).
import t from 'tap'
import { parseLogFilter } from '../../src/emulator/log-filter.ts'

const entry = (fields: Record<string, unknown>): Record<string, unknown> => ({
  logName: 'projects/p/logs/run.googleapis.com%2Fstdout',
  resource: { type: 'cloud_run_job', labels: { job_name: 'job-a', location: 'us-central1' } },
  labels: { 'run.googleapis.com/execution_name': 'job-a-x1y2z', 'run.googleapis.com/task_index': '0' },
  timestamp: '2026-12-01T10:00:00.000500Z',
  textPayload: 'Traceback: Boom',
  ...fields
})

const matches = (filter: string, fields: Record<string, unknown> = {}): boolean => parseLogFilter(filter)(entry(fields))

t.test('comparisons on nested, quoted and snake_case fields', async t => {
  t.ok(matches('resource.type="cloud_run_job" resource.labels.job_name="job-a"'))
  t.ok(matches('labels."run.googleapis.com/execution_name"="job-a-x1y2z"'))
  t.ok(matches('log_name="projects/p/logs/run.googleapis.com%2Fstdout"'), 'snake_case top-level names')
  t.notOk(matches('labels."run.googleapis.com/execution_name"="job-a-other"'))
  t.ok(matches('resource.type = "CLOUD_RUN_JOB"'), 'string comparisons ignore case')
  t.ok(matches('textPayload:"boom"'), ': is a case-insensitive substring')
  t.ok(matches('textPayload =~ "^Trace"'))
  t.ok(matches('textPayload !~ "^x"'))
  t.ok(matches('jsonPayload.code:*', { jsonPayload: { code: 0 } }))
  t.notOk(matches('jsonPayload.code:*'), ':* is a presence test')
  t.ok(matches('jsonPayload.code >= 5', { jsonPayload: { code: 7 } }), 'numbers compare as numbers')
  t.notOk(matches('labels.absent="x"'), 'a missing field matches no comparison')
  t.ok(matches('NOT labels.absent="x"'))
})

t.test('severity by rank (DEFAULT when absent); timestamps as times, to the microsecond', async t => {
  t.ok(matches('severity=DEFAULT'))
  t.ok(matches('severity>=WARNING', { severity: 'ERROR' }))
  t.notOk(matches('severity>=WARNING', { severity: 'INFO' }))
  t.ok(matches('severity>=400', { severity: 'WARNING' }), 'numeric severities')
  t.ok(matches('timestamp>"2026-12-01T10:00:00.0004Z"'))
  t.notOk(matches('timestamp>"2026-12-01T10:00:00.0005Z"'))
  t.ok(matches('timestamp>="2026-12-01T11:00:00+01:00"'), 'offsets are honoured')
})

t.test('NOT binds tightest, then OR, then AND; - is NOT; AND may be implicit', async t => {
  // "a OR NOT b AND NOT c OR d" is "(a OR (NOT b)) AND ((NOT c) OR d)", as Google documents.
  const filter = 'textPayload:a OR NOT textPayload:b AND NOT textPayload:c OR textPayload:d'
  t.ok(matches(filter, { textPayload: 'x' }), 'NOT b and NOT c')
  t.notOk(matches(filter, { textPayload: 'bc' }), 'b and c present: (F) AND (F)')
  t.ok(matches(filter, { textPayload: 'ad' }))
  t.notOk(matches(filter, { textPayload: 'c' }), 'left true, right false')
  t.ok(matches('-textPayload:zzz'))
  t.notOk(matches('-textPayload:boom'))
  t.ok(matches('(textPayload:zzz OR textPayload:boom) resource.type=cloud_run_job'))
  t.ok(matches('log_id("run.googleapis.com/stdout")'))
  t.notOk(matches('log_id("run.googleapis.com/stderr")'))
  t.ok(matches(''), 'an empty filter matches everything')
})

t.test('syntax outside the subset is refused with its position, never matched loosely', async t => {
  for (const filter of ['"boom"', 'resource.type = ("a" OR "b")', 'severity >=', 'severity>=LOUD', 'a.b="x" )', 'SEARCH("x")', 'timestamp>"yesterday"', 'labels.."x"="y"']) {
    t.throws(() => parseLogFilter(filter), { code: 3, message: /filter/i }, filter)
  }
  t.throws(() => parseLogFilter('resource.type="x"\nAND )'), { message: /line 2, column 5, token '\)'/ })
  t.throws(() => parseLogFilter('textPayload=~"("'), { code: 3, message: /regular expression/ })
  t.throws(() => parseLogFilter('x="unterminated'), { code: 3 })
  t.throws(() => parseLogFilter('x'.repeat(20_001)), { code: 3 })
})
