// `npm run conformance`: renders every conformance case through Prefect's own worker code and
// through pushpool, and prints `conformance: N/N identical`. Exits non-zero, listing the
// differences, when any case differs beyond the documented differences it prints first.

import { DOCUMENTED_DIFFERENCES } from '../test/conformance/exclusions.ts'
import { runConformance } from '../test/conformance/harness.ts'

const report = await runConformance()
const differing = report.comparisons.filter(comparison => comparison.differences.length > 0)

console.log(`Prefect ${report.prefectVersion}. Documented differences, not compared:`)
for (const [id, reason] of Object.entries(DOCUMENTED_DIFFERENCES)) console.log(`  ${id}: ${reason}`)
for (const comparison of differing) {
  console.log(`\n✗ ${comparison.id} (${comparison.about})`)
  for (const difference of comparison.differences) console.log(`    ${difference}`)
}
for (const drift of [...report.templateDrift, ...report.transliterationDrift]) console.log(`\n✗ ${drift}`)

const identical = report.comparisons.length - differing.length
console.log(`\nconformance: ${identical}/${report.comparisons.length} identical`)
process.exitCode = differing.length === 0 && report.templateDrift.length === 0 && report.transliterationDrift.length === 0 ? 0 : 1
