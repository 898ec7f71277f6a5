// The CI size of `npm run fuzz` (scripts/fuzz.ts): schemathesis against openapi.yaml on a running
// pushpool, every route with its auth, checks not_a_server_error, status_code_conformance and
// response_schema_conformance, at 40 examples per operation (the full run uses 400 and makes over
// 3,000 requests). No check is excluded, and any failure fails the test.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { runScript } from './script-run.ts'

const MIN_REQUESTS = 300
const HARD_LIMIT_MS = 480_000
const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options'])
const spec = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, unknown>> }
const OPERATIONS = Object.values(spec.paths).flatMap(item => Object.keys(item).filter(key => METHODS.has(key))).length

t.test('schemathesis finds no 5xx and no response outside the contract', async t => {
  const { code, stdout, stderr } = await runScript('fuzz.ts', ['--max-examples', '40', '--min-requests', String(MIN_REQUESTS)], HARD_LIMIT_MS)

  const summary = /^fuzz: requests=(\d+) operations=(\d+) statuses=(\{[^}]*\}) failures=(\d+)/m.exec(stdout)
  t.ok(summary, 'the script printed its summary')
  if (summary === null) {
    t.comment(`stdout:\n${stdout}\nstderr (tail):\n${stderr.split('\n').slice(-60).join('\n')}`)
    return
  }
  const requests = Number(summary[1])
  const statuses = JSON.parse(summary[3]) as Record<string, number>
  t.ok(requests >= MIN_REQUESTS, `${requests} generated requests (at least ${MIN_REQUESTS})`)
  t.equal(Number(summary[2]), OPERATIONS, `every operation of openapi.yaml was exercised (${OPERATIONS})`)
  t.same(Object.keys(statuses).filter(s => s.startsWith('5')), [], 'no 5xx answer')

  const failures = [...stdout.matchAll(/^fuzz: failed (\S+ \S+): (.*)$/gm)].map(m => ({ operation: m[1], codes: m[2] }))
  t.same(failures, [], 'every operation conforms to openapi.yaml')
  if (failures.length > 0) t.comment(stderr.split('\n').filter(l => !l.startsWith('[fuzz]')).slice(-200).join('\n'))
  t.equal(code, 0, 'the fuzz script passed')
})
