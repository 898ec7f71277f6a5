// The demo's closing table: one row per run.

export interface Row {
  scenario: string
  prefect: string
  dispatch: string
  execution: string
  /** Flow-run creation (or due time, for a scheduled run) → launch. */
  latencyMs: number | null
  ok: boolean
}

export function formatTable (rows: Row[]): string {
  const header = ['', 'run', 'Prefect state', 'dispatch', 'execution', 'to launch']
  const body = rows.map(r => [r.ok ? '✓' : '✗', r.scenario, r.prefect, r.dispatch, r.execution,
    r.latencyMs === null ? '-' : `${(r.latencyMs / 1000).toFixed(2)} s`])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map(cells => cells[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  return [line(header), line(widths.map(w => '-'.repeat(w))), ...body.map(line)].join('\n')
}
