// Reuse mode's split of a rendered job into the part shared by every run of the same spec (the
// Cloud Run job) and the part that changes per run (RunJob overrides). Plain env values go to the
// overrides, so flow-run-level env never multiplies jobs towards Cloud Run's 1000-jobs cap; what
// remains is hashed into a stable job id.
import { createHash } from 'node:crypto'
import type { V2EnvVar, V2Job } from './v2-job.ts'

export interface ReuseSplit {
  /** The job to create once; env holds only secret references. */
  spec: V2Job
  /** sha256 of the canonical spec, hex. */
  specHash: string
  /** Plain env values, passed per execution. */
  env: V2EnvVar[]
}

// Labels that name one flow run cannot live on a shared job (RunJob cannot set labels).
const PER_RUN_LABEL = /flow-run-(id|name)$/

export function splitForReuse (job: V2Job): ReuseSplit {
  const spec = structuredClone(job)
  const container = spec.template.template.containers[0]
  const env = (container.env ?? []).filter(e => e.valueSource === undefined)
  container.env = (container.env ?? []).filter(e => e.valueSource !== undefined)
  for (const labels of [spec.labels, spec.template.labels]) {
    if (labels === undefined) continue
    for (const key of Object.keys(labels)) if (PER_RUN_LABEL.test(key)) delete labels[key]
  }
  return { spec, specHash: createHash('sha256').update(canonicalJson(spec)).digest('hex'), env }
}

/** JSON with object keys sorted, so equal specs hash equally whatever order they were built in. */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}
