// `npm run conformance`: renders every conformance case through Prefect's own worker code and
// through pushpool, and prints `conformance: N/N identical`. Exits non-zero, listing the
// differences, when any case differs beyond the documented differences it prints first.

import { DOCUMENTED_DIFFERENCES } from '../test/conformance/exclusions.ts'
import { runConformance } from '../test/conformance/harness.ts'
import { PATTERN_CASES } from '../test/conformance/pattern-cases.ts'
import { FORMAT_CASES } from '../test/conformance/format-cases.ts'

const report = await runConformance()
const differing = report.comparisons.filter(comparison => comparison.differences.length > 0)

console.log(`Prefect ${report.prefectVersion}. Documented differences, not compared:`)
for (const [id, reason] of Object.entries(DOCUMENTED_DIFFERENCES)) console.log(`  ${id}: ${reason}`)
for (const comparison of differing) {
  console.log(`\n✗ ${comparison.id} (${comparison.about})`)
  for (const difference of comparison.differences) console.log(`    ${difference}`)
}
const drift = [...report.templateDrift, ...report.transliterationDrift, ...report.patternDrift, ...report.formatDrift]
for (const line of drift) console.log(`\n✗ ${line}`)

const identical = report.comparisons.length - differing.length
console.log(`\nconformance: ${identical}/${report.comparisons.length} identical`)
console.log(`patterns: ${PATTERN_CASES.length} patterns, formats: ${FORMAT_CASES.length} formats, judged as Prefect's server judges them${drift.length === 0 ? '' : ` except ${drift.length} drifts above`}`)
process.exitCode = differing.length === 0 && drift.length === 0 ? 0 : 1
