// Child processes write output in arbitrary chunks; callers want whole lines.

/** Returns a `data` listener that calls `onLine` once per complete, non-blank line. */
export function lineSplitter (onLine: (line: string) => void): (chunk: Buffer) => void {
  let partial = ''
  return (chunk) => {
    const lines = (partial + chunk.toString('utf8')).split(/\r?\n/)
    partial = lines.pop() ?? ''
    for (const line of lines) if (line.trim() !== '') onLine(line)
  }
}
