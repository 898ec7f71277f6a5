// What the demo has started, stopped in reverse order by whichever comes first: the demo's end, or
// SIGINT/SIGTERM at any moment, even halfway through starting the stack.

export class Teardown {
  private readonly steps: Array<() => Promise<void>> = []
  private running: Promise<void> | null = null

  /** Registers how to stop something just started; once the teardown has begun, stops it at once. */
  add (step: () => Promise<void>): void {
    if (this.running === null) this.steps.push(step)
    else void step().catch(() => undefined)
  }

  /** Stops everything registered, newest first; every caller shares the one run. */
  run (): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) await step().catch(() => undefined)
    })()
    return this.running
  }
}

/** The first SIGINT or SIGTERM, as a promise; a second one ends the process at once. */
export function firstStopSignal (onSecond: (signal: NodeJS.Signals) => void): { received: Promise<NodeJS.Signals>, release: () => void } {
  let resolve: (signal: NodeJS.Signals) => void = () => {}
  const received = new Promise<NodeJS.Signals>(r => { resolve = r })
  let first: NodeJS.Signals | null = null
  const listener = (signal: NodeJS.Signals): void => {
    if (first === null) { first = signal; resolve(signal) } else onSecond(signal)
  }
  process.on('SIGINT', listener)
  process.on('SIGTERM', listener)
  return {
    received,
    release: () => {
      process.off('SIGINT', listener)
      process.off('SIGTERM', listener)
    }
  }
}
