// What `pushpool setup` prints: one line per object with what happened to it, the objects
// themselves on a dry run, and how to see pushpool launch a run.
import type { Outcome } from './step.ts'
import type { SetupReport, SetupResult } from './setup.ts'

const DONE: Record<Outcome, string> = { create: 'created', update: 'updated', unchanged: 'unchanged', delete: 'deleted' }
const PLANNED: Record<Outcome, string> = { create: 'would create', update: 'would update', unchanged: 'unchanged', delete: 'would delete' }
const SHOWN_PATHS = 4

export function formatReport (report: SetupReport): string {
  const lines = [`Prefect${report.prefectVersion === null ? '' : ` ${report.prefectVersion}`} at ${report.apiUrl}${report.dryRun ? ' (dry run: nothing was changed)' : ''}`]
  const kindWidth = Math.max(...report.results.map(r => r.kind.length))
  const nameWidth = Math.max(...report.results.map(r => r.name.length)) + 2
  for (const result of report.results) {
    lines.push(`  ${result.kind.padEnd(kindWidth)}  ${`"${result.name}"`.padEnd(nameWidth)}  ${outcomeText(result, report.dryRun)}`)
  }
  if (report.dryRun) {
    lines.push('', 'The objects (the webhook secret is redacted):')
    for (const result of report.results) {
      lines.push('', `${result.kind} "${result.name}":`, JSON.stringify(result.shown, null, 2))
    }
  }
  lines.push('', ...nextSteps(report))
  return `${lines.join('\n')}\n`
}

function outcomeText (result: SetupResult, dryRun: boolean): string {
  const verb = (dryRun ? PLANNED : DONE)[result.outcome]
  const paths = result.changed.length <= SHOWN_PATHS
    ? result.changed
    : [...result.changed.slice(0, SHOWN_PATHS), `${result.changed.length - SHOWN_PATHS} more`]
  const detail = [result.note, ...paths].filter(part => part !== undefined)
  return detail.length > 0 ? `${verb} (${detail.join(', ')})` : verb
}

function nextSteps (report: SetupReport): string[] {
  const pool = report.pool
  const run = report.deployment === null
    ? [`     No deployment uses pool "${pool}" yet: \`prefect deploy --pool ${pool}\`, then`,
        '       prefect deployment run \'<flow name>/<deployment name>\'']
    : [`       prefect deployment run '${report.deployment.flowName}/${report.deployment.deploymentName}'`]
  return [
    'Next:',
    `  1. pushpool must serve the pool: include "${pool}" in its PUSHPOOL_POOLS.`,
    '  2. Start a test run (or press "Run" on a deployment of the pool in the Prefect UI):',
    ...run,
    `  3. Prefect calls ${report.webhookUrl}; the run turns Pending and gets an infrastructure pid.`,
    `     pushpool's record of it: GET ${report.url.replace(/\/+$/, '')}/v1/dispatches?pool=${encodeURIComponent(pool)} (admin credentials).`,
    'Runs created by a schedule send no event: reconcile (Cloud Scheduler, each minute) takes them up to',
    'PUSHPOOL_PREFETCH_SECONDS early, and the Late event (PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS, default 15)',
    'often sooner.'
  ]
}
