// Durations in their REST form ("600s", "0.100s"), as resources store them.
import { invalidArgument } from './rpc-error.ts'

const DURATION = /^(\d+)(?:\.(\d{1,9}))?s$/

export function durationMs (duration: string): number {
  const m = DURATION.exec(duration)
  if (!m) throw invalidArgument(`Invalid duration '${duration}': expected seconds with an 's' suffix, like "600s".`)
  return Number(m[1]) * 1000 + Number((m[2] ?? '').padEnd(3, '0').slice(0, 3))
}

/** Milliseconds as Google writes a duration: whole seconds bare, fractions to the millisecond ("0.100s"). */
export function msDuration (ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(3)}s`
}
