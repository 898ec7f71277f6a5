// `npm run conformance`: renders every conformance case through Prefect's own worker code and
// through pushpool, and prints `conformance: N/N identical`. Exits non-zero, listing the
// differences, when any case differs beyond the documented differences it prints first.

import { runConformance } from '../test/conformance/harness.ts'
import { describeVersions, documentedDifferences, summarize } from '../test/conformance/summary.ts'

const report = await runConformance()
const summary = summarize(report)
console.log(`${describeVersions(report)}. Documented differences, not compared:`)
for (const line of [...documentedDifferences(), '', ...summary.lines]) console.log(line)
process.exitCode = summary.ok ? 0 : 1
