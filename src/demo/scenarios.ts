// The runs the demo triggers, each showing one thing pushpool does, with the end it must reach.
import { fileURLToPath } from 'node:url'
import type { StateType } from '../prefect/types.ts'
import type { DispatchState } from '../store/transitions.ts'

// src/demo and dist/demo both sit two levels below the repository root.
export const EXAMPLE_FLOWS_DIR = fileURLToPath(new URL('../../examples/flows/', import.meta.url))

/** What the crashing container prints on stderr before it exits: the demo finds it in the run's Prefect logs. */
export const CRASH_LINE = 'ImportError: cannot import name flow from hello (a broken image, on purpose)'

export interface Scenario {
  name: string
  shows: string
  flow: 'hello' | 'fails' | 'sleepy'
  jobVariables?: Record<string, unknown>
  /** Seconds from now the run is scheduled for; absent means due at once. */
  scheduleIn?: number
  /** Ask Prefect to cancel the run once it is running. */
  cancelWhenRunning?: boolean
  /**
   * How each must end; `launchWithinMs`: launched at most this long after it was due. A scheduled
   * run's timer launches it PUSHPOOL_PREFETCH_SECONDS early; the bound is far below the minute
   * reconcile would take, so a run that needed reconcile is not on time.
   */
  expect: { prefect: StateType, dispatch: DispatchState, launchWithinMs?: number }
}

export const SCENARIOS: Scenario[] = [
  { name: 'completes', shows: 'an immediate run that completes', flow: 'hello', expect: { prefect: 'COMPLETED', dispatch: 'succeeded' } },
  { name: 'fails', shows: 'a run that fails inside the flow', flow: 'fails', expect: { prefect: 'FAILED', dispatch: 'failed' } },
  {
    name: 'crashes',
    shows: 'a container that exits non-zero before the engine reports; its stderr lands in the run\'s logs',
    flow: 'hello',
    jobVariables: { command: `python -c "import sys; print('${CRASH_LINE}', file=sys.stderr); sys.exit(3)"` },
    expect: { prefect: 'CRASHED', dispatch: 'crashed' }
  },
  { name: 'scheduled', shows: 'a run scheduled 15 s ahead, started on time', flow: 'hello', scheduleIn: 15, expect: { prefect: 'COMPLETED', dispatch: 'succeeded', launchWithinMs: 10_000 } },
  { name: 'cancelled', shows: 'a running flow cancelled from Prefect', flow: 'sleepy', cancelWhenRunning: true, expect: { prefect: 'CANCELLED', dispatch: 'cancelled' } }
]
