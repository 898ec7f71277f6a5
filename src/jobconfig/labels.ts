// The labels Prefect's worker stamps on a flow run's infrastructure, and how prefect-gcp turns them
// into Google Cloud labels (prefect/workers/base.py `prepare_for_flow_run`,
// prefect_gcp/utilities.py `sanitize_labels_for_gcp` / `merge_labels_for_gcp`).

import type { Deployment, Flow, FlowRun, WorkPool } from '../prefect/types.ts'

const GCP_LABEL_MAX_LENGTH = 63
const GCP_LABEL_MAX_COUNT = 64
const GCP_LABEL_UNSAFE = /[^a-z0-9_-]/gu
const GCP_LABEL_LEADING_NON_LETTERS = /^[^a-z]+/

export interface PrefectLabelSources {
  flowRun: FlowRun
  workPool: WorkPool
  workerName: string
  flow: Flow | null
  deployment: Deployment | null
  prefectVersion: string
}

/** Prefect's own labels, most important first: GCP's 64-label cap drops from the end. */
export function prefectLabels (sources: PrefectLabelSources): Record<string, string> {
  const { flowRun, workPool, workerName, flow, deployment, prefectVersion } = sources
  const labels: Record<string, string> = {
    'prefect.io/flow-run-id': flowRun.id,
    'prefect.io/flow-run-name': flowRun.name,
    'prefect.io/version': prefectVersion,
    'prefect.io/work-pool-name': workPool.name,
    'prefect.io/work-pool-id': workPool.id,
    'prefect.io/worker-name': workerName
  }
  if (flow !== null) {
    labels['prefect.io/flow-id'] = flow.id
    labels['prefect.io/flow-name'] = flow.name
  }
  if (deployment !== null) {
    labels['prefect.io/deployment-id'] = deployment.id
    labels['prefect.io/deployment-name'] = deployment.name
    if (deployment.updated != null) labels['prefect.io/deployment-updated'] = pythonUtcIsoformat(deployment.updated)
  }
  return labels
}

/**
 * GCP label rules: lowercase letters, digits, `_` and `-`, at most 63 characters, keys starting
 * with a letter. Keys that sanitise to nothing are dropped.
 */
export function sanitizeLabelsForGcp (labels: Record<string, string>): Record<string, string> {
  const sanitized: Record<string, string> = {}
  for (const [key, value] of Object.entries(labels)) {
    const safeKey = key.toLowerCase().replace(GCP_LABEL_UNSAFE, '-')
      .replace(GCP_LABEL_LEADING_NON_LETTERS, '').slice(0, GCP_LABEL_MAX_LENGTH)
    if (safeKey === '') continue
    sanitized[safeKey] = value.toLowerCase().replace(GCP_LABEL_UNSAFE, '-').slice(0, GCP_LABEL_MAX_LENGTH)
  }
  return sanitized
}

/**
 * Sanitised Prefect labels merged under the job body's own labels, which win on collision and are
 * never dropped; past GCP's 64-label cap the last (least important) Prefect labels go first.
 */
export function mergeLabelsForGcp (prefect: Record<string, string>, existing: Record<string, unknown>): Record<string, unknown> {
  const sanitized = sanitizeLabelsForGcp(prefect)
  const merged: Record<string, unknown> = { ...sanitized, ...existing }
  const excess = Object.keys(merged).length - GCP_LABEL_MAX_COUNT
  if (excess > 0) {
    const prefectOnly = Object.keys(sanitized).filter(key => !Object.hasOwn(existing, key))
    for (const key of prefectOnly.slice(-excess)) delete merged[key]
  }
  return merged
}

const ISO_DATETIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|[+-]\d{2}:?\d{2})?$/i

/**
 * `datetime.astimezone(UTC).isoformat()` of an API timestamp, e.g. "2024-05-01T12:00:00.5Z" →
 * "2024-05-01T12:00:00.500000+00:00" (microseconds only when non-zero). A timestamp without an
 * offset is taken as UTC, which is what Prefect's API always sends.
 */
export function pythonUtcIsoformat (timestamp: string): string {
  const match = ISO_DATETIME.exec(timestamp)
  if (match === null) return timestamp
  const [, year, month, day, hour, minute, second = '0', fraction = '', offset = 'Z'] = match
  let offsetMinutes = 0
  if (offset.toUpperCase() !== 'Z') {
    const digits = offset.replace(':', '')
    offsetMinutes = (digits.startsWith('-') ? -1 : 1) * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)))
  }
  const utc = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute) - offsetMinutes, Number(second)))
  const micros = fraction.slice(0, 6).padEnd(6, '0')
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0')
  const date = `${pad(utc.getUTCFullYear(), 4)}-${pad(utc.getUTCMonth() + 1)}-${pad(utc.getUTCDate())}`
  const time = `${pad(utc.getUTCHours())}:${pad(utc.getUTCMinutes())}:${pad(utc.getUTCSeconds())}`
  return `${date}T${time}${Number(micros) === 0 ? '' : `.${micros}`}+00:00`
}
