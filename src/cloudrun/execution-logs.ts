// A Cloud Run execution's last log lines, read back from Cloud Logging for a run that crashed: one
// entries.list call (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list) for
// the execution's stdout, stderr and varlog/system entries, newest first, then put back in order,
// redacted and cut to a sane length; and the exit code from the system entry "Container called exit(N).".
//
// Through google-auth-library's REST request on the launch's own AuthClient, not @google-cloud/logging:
// whoever holds a GCP identity has google-auth-library loaded already (the AuthClient is one of its
// objects), so a read costs one HTTPS call and nothing more. @google-cloud/logging 12.1 would add
// ~21 packages (~7 MB) to the image and, in fresh Node 24 processes (medians of five), ~70 ms and
// ~7 MB of RSS to import even after @google-cloud/run, ~300 ms and ~20 MB more to build a client, and
// a probe of the GCE metadata server when one is built. Nothing here is loaded at start-up.
import type { AuthClient } from 'google-auth-library'
import { NeverRetry, RetryLater } from '../failures.ts'
import type { ContainerLine } from '../prefect/flow-run-logs.ts'
import { lineRedactor } from './log-redaction.ts'

export interface LastLinesRequest {
  project: string
  region: string
  job: string
  /** The execution's short id, or its full name (projects/…/executions/ID). */
  execution: string
  /** The execution's createTime: entries from a minute before it on are read (its label picks them), a time bound keeping the query cheap. */
  createTime: string | Date
  /** How many entries to keep, the newest; default 50, at most 1000 (one page of entries.list). */
  limit?: number
  /** Values to blank wherever they appear (the run's secrets the caller knows). */
  secrets?: readonly string[]
}

export interface LastLines {
  /** Oldest first, redacted, each at most maxLineChars. */
  lines: ContainerLine[]
  /** From the newest "Container called exit(N)." among the lines read, else null. */
  exitCode: number | null
  /** More entries came before the first line. */
  earlierOmitted: boolean
}

export interface CloudLoggingOptions {
  /**
   * The launch's GCP identity (GcpIdentity.authClient). null in emulator mode: the emulator demands
   * a bearer token but checks none, so a placeholder is sent.
   */
  authClient: AuthClient | null
  /** Default https://logging.googleapis.com; the emulator's httpUrl in emulator mode. */
  baseUrl?: string
  /** Default 10 s. */
  timeoutMs?: number
  /** Longer lines are cut, marked "... [truncated]"; default 2000 characters. */
  maxLineChars?: number
}

export const DEFAULT_LOGGING_URL = 'https://logging.googleapis.com'
const DEFAULT_LIMIT = 50
const MAX_PAGE_SIZE = 1000
const TRUNCATED = '... [truncated]'
const EXIT = /^Container called exit\((-?\d+)\)\.$/
/**
 * The time bound starts this long before createTime. Only the execution's label picks its entries;
 * the bound just keeps the query cheap. An entry is stamped by another clock than createTime (the
 * instance's, or the line's own "timestamp"), so a line written at the container's start can read
 * as older than the execution: an exact bound dropped it while the later exit line came through.
 */
const CLOCK_SLACK_MS = 60_000
const LOG_IDS = { 'run.googleapis.com/stdout': 'stdout', 'run.googleapis.com/stderr': 'stderr', 'run.googleapis.com/varlog/system': 'system' } as const

interface LogEntry {
  logName?: string
  timestamp?: string
  severity?: string
  textPayload?: string
  jsonPayload?: Record<string, unknown>
}

export async function lastLines (request: LastLinesRequest, options: CloudLoggingOptions): Promise<LastLines> {
  const limit = request.limit ?? DEFAULT_LIMIT
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new RangeError(`limit must be a whole number from 1 to ${MAX_PAGE_SIZE}, not ${limit}`)
  }
  const execution = request.execution.split('/').at(-1) ?? request.execution
  const body = {
    resourceNames: [`projects/${request.project}`],
    filter: executionFilter({ ...request, execution }),
    orderBy: 'timestamp desc',
    pageSize: limit
  }
  const client = options.authClient ?? await placeholderClient()
  const url = `${(options.baseUrl ?? DEFAULT_LOGGING_URL).replace(/\/+$/, '')}/v2/entries:list`
  let data: { entries?: LogEntry[], nextPageToken?: string }
  try {
    const response = await client.request<{ entries?: LogEntry[], nextPageToken?: string }>({
      url, method: 'POST', data: body, timeout: options.timeoutMs ?? 10_000, retry: false
    })
    data = response.data ?? {}
  } catch (err) {
    throw classify(err, request.project, execution)
  }
  const redact = lineRedactor(request.secrets)
  const maxChars = options.maxLineChars ?? 2000
  const lines = (data.entries ?? []).reverse().flatMap(entry => {
    const line = containerLine(entry)
    if (line === null) return []
    const text = redact(line.text)
    return [{ ...line, text: text.length > maxChars ? text.slice(0, maxChars - TRUNCATED.length) + TRUNCATED : text }]
  })
  return { lines, exitCode: exitCodeOf(lines), earlierOmitted: (data.nextPageToken ?? '') !== '' }
}

/**
 * The entries Cloud Run writes for one execution (https://cloud.google.com/run/docs/logging): the
 * `cloud_run_job` resource of the job and region, the execution's label, its three logs.
 */
export function executionFilter (target: { job: string, region: string, execution: string, createTime: string | Date }): string {
  const created = target.createTime instanceof Date ? target.createTime.getTime() : Date.parse(target.createTime)
  const since = Number.isNaN(created) ? String(target.createTime) : new Date(created - CLOCK_SLACK_MS).toISOString()
  return [
    'resource.type="cloud_run_job"',
    `resource.labels.job_name=${quoted(target.job)}`,
    `resource.labels.location=${quoted(target.region)}`,
    `labels."run.googleapis.com/execution_name"=${quoted(target.execution)}`,
    `(${Object.keys(LOG_IDS).map(id => `log_id(${quoted(id)})`).join(' OR ')})`,
    `timestamp>=${quoted(since)}`
  ].join('\n')
}

/**
 * The Cloud Console's pages of an execution: its details, and its logs (the Execution's own logUri
 * points at Logs Explorer and is as good, when the caller has it).
 */
export function executionLinks (target: { project: string, region: string, execution: string }): { consoleUrl: string, logsUrl: string } {
  const execution = target.execution.split('/').at(-1) ?? target.execution
  const page = `https://console.cloud.google.com/run/jobs/executions/details/${encodeURIComponent(target.region)}/${encodeURIComponent(execution)}`
  const project = `?project=${encodeURIComponent(target.project)}`
  return { consoleUrl: page + project, logsUrl: `${page}/logs${project}` }
}

function quoted (value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

function containerLine (entry: LogEntry): ContainerLine | null {
  const logId = decodeURIComponent((entry.logName ?? '').split('/logs/')[1] ?? '')
  const stream = LOG_IDS[logId as keyof typeof LOG_IDS]
  if (stream === undefined) return null
  const json = entry.jsonPayload
  const text = entry.textPayload ?? (json === undefined ? '' : typeof json.message === 'string' ? json.message : JSON.stringify(json))
  const severity = entry.severity === undefined || entry.severity === 'DEFAULT' ? null : entry.severity
  return { timestamp: entry.timestamp ?? '', stream, severity, text }
}

function exitCodeOf (lines: ContainerLine[]): number | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const exit = lines[i].stream === 'system' ? EXIT.exec(lines[i].text.trim()) : null
    if (exit !== null) return Number(exit[1])
  }
  return null
}

/** A failed call, as the caller acts on it: RetryLater (an outage, a quota, a timeout), or NeverRetry with what to fix. */
function classify (err: unknown, project: string, execution: string): Error {
  const failure = err as { status?: number, response?: { status?: number, data?: { error?: { message?: string, status?: string } } }, message?: string }
  const status = failure.response?.status ?? failure.status ?? null
  const google = failure.response?.data?.error
  const detail = (google?.message ?? failure.message ?? String(err)).slice(0, 300)
  const what = `${status ?? 'no answer'}${google?.status !== undefined ? ` ${google.status}` : ''}`
  const options = { cause: err }
  switch (status) {
    case 400:
      return new NeverRetry(`Cloud Logging refused the query for execution ${execution} (${what}): ${detail}`, options)
    case 401:
      return new NeverRetry(`Cloud Logging did not accept the launching identity's credentials (${what}): check the GCP credentials of the work pool`, options)
    case 403:
      return new NeverRetry(`Cloud Logging denied listing the logs of project ${project} (${what}): grant the launching identity ` +
        'roles/logging.viewer (permission logging.logEntries.list) on the project', options)
    case 404:
      return new NeverRetry(`Cloud Logging found no project ${project} (${what}): check the project of the work pool's credentials`, options)
    default:
      return new RetryLater(`Cloud Logging could not list the logs of execution ${execution} (${what}): ${detail}; try again later`, options)
  }
}

let placeholder: Promise<AuthClient> | null = null

/** For the emulator: an OAuth2 client holding a token that never expires, so it never asks Google for one. */
function placeholderClient (): Promise<AuthClient> {
  placeholder ??= import('google-auth-library').then(({ OAuth2Client }) => {
    const client = new OAuth2Client()
    client.setCredentials({ access_token: 'emulator', expiry_date: Number.MAX_SAFE_INTEGER })
    return client
  })
  return placeholder
}
