// The differential conformance suite: every case in cases.ts rendered by Prefect's own Python code
// and by pushpool must agree, apart from the differences listed in exclusions.ts.
import t from 'tap'
import { CASES } from './cases.ts'
import { runConformance } from './harness.ts'

t.setTimeout(10 * 60_000)

const report = await runConformance()

t.test('the stored default templates are those the installed prefect-gcp offers', async (t) => {
  t.same(report.templateDrift, [])
})

t.test('job names transliterate every code point as python-slugify does', async (t) => {
  t.same(report.transliterationDrift, [])
})

t.test('JSON Schema patterns are judged as Python\'s re judges them', async (t) => {
  t.same(report.patternDrift, [])
})

t.test('JSON Schema formats on pool defaults are judged as Prefect\'s server judges them', async (t) => {
  t.same(report.formatDrift, [])
})

t.test(`pushpool renders every case as Prefect ${report.prefectVersion} does`, async (t) => {
  t.ok(CASES.length >= 40, `${CASES.length} cases`)
  for (const comparison of report.comparisons) {
    const relied = comparison.reliedOn.length === 0 ? '' : ` (documented: ${comparison.reliedOn.join(', ')})`
    t.same(comparison.differences, [], `${comparison.id}: ${comparison.about}${relied}`)
  }
})
