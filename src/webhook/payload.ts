// The webhook payload → the one thing pushpool takes from it: a flow run id. Everything else is
// read from Prefect, so a forged or stale payload can at most make pushpool look at a flow run.
// Framework-agnostic: a refusal is a value naming its code from the error table, which the HTTP
// adapter turns into a reply.
import type { ErrorCode } from '../errors.ts'

export interface WebhookPayload {
  flowRunId: string
  event: string | null
  eventId: string | null
}

export type ParsedPayload =
  | { ok: true, payload: WebhookPayload }
  | { ok: false, code: Extract<ErrorCode, `WEBHOOK_${string}`>, message?: string }

const FLOW_RUN_RESOURCE = /^prefect\.flow-run\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i
const MAX_DEPTH = 8

export function parseWebhookPayload (body: Buffer): ParsedPayload {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    return { ok: false, code: 'WEBHOOK_INVALID_JSON' }
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: false, code: 'WEBHOOK_INVALID_PAYLOAD' }
  if (deeperThan(parsed, MAX_DEPTH)) {
    return { ok: false, code: 'WEBHOOK_INVALID_PAYLOAD', message: `The webhook payload is nested deeper than ${MAX_DEPTH} levels: send the flat payload template` }
  }
  // Only own, named fields are read; nothing is merged into another object, so keys such as
  // "__proto__" cannot pollute a prototype.
  const record = parsed as Record<string, unknown>
  const resource = Object.hasOwn(record, 'resource_id') ? record.resource_id : undefined
  if (typeof resource !== 'string' || resource === '') return { ok: false, code: 'WEBHOOK_INVALID_PAYLOAD' }
  const match = FLOW_RUN_RESOURCE.exec(resource)
  if (match === null) {
    return {
      ok: false,
      code: 'WEBHOOK_FOREIGN_RESOURCE',
      message: `The webhook resource_id is not a flow run: expected "prefect.flow-run.<uuid>", got ${JSON.stringify(resource.slice(0, 80))}`
    }
  }
  return {
    ok: true,
    payload: { flowRunId: match[1].toLowerCase(), event: optionalString(record, 'event'), eventId: optionalString(record, 'event_id') }
  }
}

function optionalString (record: Record<string, unknown>, field: string): string | null {
  const value = Object.hasOwn(record, field) ? record[field] : undefined
  return typeof value === 'string' && value !== '' ? value.slice(0, 200) : null
}

/** Stops descending at `limit`, so a hostile 64 KiB chain of brackets cannot exhaust the stack. */
function deeperThan (value: unknown, limit: number): boolean {
  if (value === null || typeof value !== 'object') return false
  if (limit === 0) return true
  return Object.values(value as Record<string, unknown>).some(child => deeperThan(child, limit - 1))
}
