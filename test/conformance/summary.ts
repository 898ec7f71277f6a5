// The conformance report as the scripts print it (scripts/conformance.ts, scripts/compat.ts).

import { DOCUMENTED_DIFFERENCES } from './exclusions.ts'
import type { ConformanceReport } from './harness.ts'
import { PATTERN_CASES } from './pattern-cases.ts'
import { FORMAT_CASES } from './format-cases.ts'

export interface ConformanceSummary {
  /** Every difference and drift, then the counts. */
  lines: string[]
  /** `conformance: N/N identical` */
  verdict: string
  ok: boolean
}

export function summarize (report: ConformanceReport): ConformanceSummary {
  const lines: string[] = []
  const differing = report.comparisons.filter(comparison => comparison.differences.length > 0)
  for (const comparison of differing) {
    lines.push(`✗ ${comparison.id} (${comparison.about})`, ...comparison.differences.map(difference => `    ${difference}`))
  }
  const drift = [...report.templateDrift, ...report.transliterationDrift, ...report.patternDrift, ...report.formatDrift]
  lines.push(...drift.map(line => `✗ ${line}`))
  const identical = report.comparisons.length - differing.length
  const verdict = `conformance: ${identical}/${report.comparisons.length} identical`
  lines.push(verdict, `patterns: ${PATTERN_CASES.length} patterns, formats: ${FORMAT_CASES.length} formats, judged as Prefect's server judges them${drift.length === 0 ? '' : ` except ${drift.length} drifts above`}`)
  return { lines, verdict, ok: differing.length === 0 && drift.length === 0 }
}

export function describeVersions (report: ConformanceReport): string {
  return report.serverPrefectVersion === report.prefectVersion
    ? `Prefect ${report.prefectVersion}`
    : `Prefect server ${report.serverPrefectVersion}, worker ${report.prefectVersion}`
}

export function documentedDifferences (): string[] {
  return Object.entries(DOCUMENTED_DIFFERENCES).map(([id, reason]) => `  ${id}: ${reason}`)
}
