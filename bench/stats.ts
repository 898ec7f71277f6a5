// Summaries of repeated measurements: median and min–max, which is what RESULTS.md reports for
// every figure (the machine is shared and noisy, so means would mislead).

export interface Summary {
  median: number
  min: number
  max: number
  /** How many repetitions the figure is over. */
  n: number
}

export function summarize (values: number[]): Summary {
  const finite = values.filter(v => Number.isFinite(v))
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 }
  const sorted = [...finite].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  return { median: round(median), min: round(sorted[0]), max: round(sorted[sorted.length - 1]), n: sorted.length }
}

/** Three significant decimals are more than a noisy 2-core machine can back. */
export function round (value: number, digits = 3): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

export function formatSummary (s: Summary, unit = '', digits = 1): string {
  if (s.n === 0) return 'n/a'
  const f = (v: number): string => v.toFixed(digits)
  return `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)}, n=${s.n})`
}
