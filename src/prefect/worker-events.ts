// Prefect events for a dispatched run, shaped as Prefect's own worker emits them
// (prefect/workers/base.py: _event_resource, _event_related_resources, _emit_flow_run_submitted_event,
// _emit_flow_run_executed_event; prefect/events/related.py), plus pushpool's own `pushpool.dispatch.*`
// events. Pure builders: nothing here talks to Prefect (see activity-writer.ts).
//
// pushpool's own events concern a `pushpool.dispatch.<id>` resource rather than the worker's: a
// dispatch is what is claimed, launched and ended, many run at once, and Prefect's automations group
// by resource id, so a proactive trigger ("launched, but no execution-ended within an hour") works
// per dispatch only when each dispatch is its own resource. The worker stays in `related` (role
// `worker`, as the worker's own include_self form has it), with the run's resources.
import { randomUUID } from 'node:crypto'
import type { Deployment, Flow, FlowRun, WorkPool } from './types.ts'

/** A resource or related resource: string labels, `prefect.resource.id` among them. */
export type ResourceLabels = Record<string, string>

/** An event as `POST /api/events` takes it (prefect/server/events/schemas/events.py Event). */
export interface PrefectEvent {
  id: string
  /** ISO 8601. */
  occurred: string
  event: string
  resource: ResourceLabels
  related: ResourceLabels[]
  payload: Record<string, unknown>
  follows?: string
}

/** Who emits: pushpool acting as the pool's worker. */
export interface WorkerIdentity {
  /** PUSHPOOL_WORKER_NAME, the name pushpool heartbeats under. */
  name: string
  /** The work pool's type, e.g. `cloud-run-v2`: the worker type Prefect's UI knows the pool by. */
  type: string
  /** The Prefect version to report as `prefect.version` (the server's, which pushpool reads for image tags). */
  prefectVersion: string
}

/** The Prefect objects a dispatch resolved; those unknown are null and left out, as the worker leaves out a None. */
export interface RunObjects {
  /** The run as far as events need it; a dispatch's own record knows its id and name. */
  flowRun: Pick<FlowRun, 'id' | 'name' | 'tags'>
  deployment: Deployment | null
  flow: Flow | null
  workPool: WorkPool | null
}

/** Prefect's default PREFECT_SERVER_EVENTS_MAXIMUM_RELATED_RESOURCES; a longer list is refused whole. */
const MAX_RELATED = 100
/** emit_event keeps `follows` only when the earlier event is this close (TIGHT_TIMING). */
const FOLLOWS_WINDOW_MS = 5 * 60_000

/**
 * The worker's resource, `prefect.worker.<type>.<name slug>`. The slug is python-slugify's for the
 * characters PUSHPOOL_WORKER_NAME allows ([A-Za-z0-9_.-]): lowercased, every run of other characters
 * one dash, dashes collapsed and trimmed.
 */
export function workerResource (worker: WorkerIdentity): ResourceLabels {
  const slug = worker.name.toLowerCase().replace(/[^-a-z0-9]+/g, '-').replace(/-{2,}/g, '-').replace(/^-+|-+$/g, '')
  return {
    'prefect.resource.id': `prefect.worker.${worker.type}.${slug}`,
    'prefect.resource.name': worker.name,
    'prefect.version': worker.prefectVersion,
    'prefect.worker-type': worker.type
  }
}

/**
 * The worker's related resources for a run, in its order: deployment, flow, flow run (the job
 * configuration's `_related_objects`), then one `prefect.tag.<tag>` per distinct tag of those three,
 * sorted, then the work pool.
 */
export function runRelatedResources (objects: RunObjects): ResourceLabels[] {
  const { flowRun, deployment, flow, workPool } = objects
  const related: ResourceLabels[] = []
  const tags = new Set<string>()
  for (const [kind, object] of [['deployment', deployment], ['flow', flow], ['flow-run', flowRun]] as const) {
    if (object === null) continue
    for (const tag of object.tags ?? []) tags.add(tag)
    related.push(objectResource(kind, object))
  }
  // Python's sorted() orders by code point, as the default string comparison does here.
  for (const tag of [...tags].sort()) related.push({ 'prefect.resource.id': `prefect.tag.${tag}`, 'prefect.resource.role': 'tag' })
  if (workPool !== null) related.push(objectResource('work-pool', workPool))
  return related
}

/** `prefect.worker.submitted-flow-run`, emitted once the job configuration is rendered, before the launch. */
export function submittedFlowRunEvent (worker: WorkerIdentity, objects: RunObjects, at: Date = new Date()): PrefectEvent {
  return event('prefect.worker.submitted-flow-run', workerResource(worker), capRelated(runRelatedResources(objects)), {}, at)
}

/**
 * `prefect.worker.executed-flow-run`, emitted when the infrastructure ended. The flow-run resource
 * carries the infrastructure's identifier (the Cloud Run job's name, as CloudRunWorkerV2Result has
 * it) and status code (0 succeeded, 1 failed, -1 the job was deleted under the watch).
 */
export function executedFlowRunEvent (worker: WorkerIdentity, objects: RunObjects,
  result: { identifier: string, statusCode: number }, follows: PrefectEvent | null = null, at: Date = new Date()): PrefectEvent {
  const related = runRelatedResources(objects).map(resource => resource['prefect.resource.role'] === 'flow-run'
    ? { ...resource, 'prefect.infrastructure.identifier': result.identifier, 'prefect.infrastructure.status-code': String(result.statusCode) }
    : resource)
  return event('prefect.worker.executed-flow-run', workerResource(worker), capRelated(related), {}, at, follows)
}

/** What pushpool's own events are about: one dispatch of one run. */
export interface DispatchSubject {
  worker: WorkerIdentity
  objects: RunObjects
  dispatchId: string
}

/** The Cloud Run execution a dispatch launched, with links a user can open. */
export interface LaunchedExecution {
  project: string
  region: string
  job: string
  /** The execution's short id (the last segment of its name). */
  execution: string
  consoleUrl: string
  logsUrl: string
}

export type TimerKind = 'process' | 'cloud-tasks'

/** The names of pushpool's own events, `pushpool.dispatch.<what>`. */
export const DISPATCH_EVENTS = {
  claimed: 'pushpool.dispatch.claimed',
  launched: 'pushpool.dispatch.launched',
  executionEnded: 'pushpool.dispatch.execution-ended',
  crashed: 'pushpool.dispatch.crashed',
  cancelled: 'pushpool.dispatch.cancelled',
  timerArmed: 'pushpool.dispatch.timer-armed'
} as const

/** Prefect accepted Pending from this dispatch: the run is pushpool's to launch. */
export function dispatchClaimedEvent (subject: DispatchSubject, at: Date = new Date()): PrefectEvent {
  return dispatchEvent(DISPATCH_EVENTS.claimed, subject, {}, at)
}

/** Cloud Run named the execution. */
export function dispatchLaunchedEvent (subject: DispatchSubject, launched: LaunchedExecution, follows: PrefectEvent | null = null, at: Date = new Date()): PrefectEvent {
  return dispatchEvent(DISPATCH_EVENTS.launched, subject, {
    project: launched.project,
    region: launched.region,
    job: launched.job,
    execution: launched.execution,
    console_url: launched.consoleUrl,
    logs_url: launched.logsUrl
  }, at, follows)
}

/** The execution ended; `exitCode` when Cloud Logging or the task told it, `durationSeconds` from its start. */
export function executionEndedEvent (subject: DispatchSubject,
  ended: { execution: string, succeeded: boolean, exitCode: number | null, durationSeconds: number | null, condition: string | null },
  follows: PrefectEvent | null = null, at: Date = new Date()): PrefectEvent {
  return dispatchEvent(DISPATCH_EVENTS.executionEnded, subject, {
    execution: ended.execution,
    succeeded: ended.succeeded,
    exit_code: ended.exitCode,
    duration_seconds: ended.durationSeconds,
    condition: ended.condition
  }, at, follows)
}

/** pushpool reported the run Crashed; `reason` is the state's message. */
export function dispatchCrashedEvent (subject: DispatchSubject, reason: string, follows: PrefectEvent | null = null, at: Date = new Date()): PrefectEvent {
  return dispatchEvent(DISPATCH_EVENTS.crashed, subject, { reason }, at, follows)
}

/** pushpool cancelled the run, its execution (if any) with it. */
export function dispatchCancelledEvent (subject: DispatchSubject, cancelled: { reason: string, execution: string | null },
  follows: PrefectEvent | null = null, at: Date = new Date()): PrefectEvent {
  return dispatchEvent(DISPATCH_EVENTS.cancelled, subject, { reason: cancelled.reason, execution: cancelled.execution }, at, follows)
}

/** A timer will fire the dispatch at `fireAt`. */
export function timerArmedEvent (subject: DispatchSubject, timer: { fireAt: Date, kind: TimerKind }, at: Date = new Date()): PrefectEvent {
  return dispatchEvent(DISPATCH_EVENTS.timerArmed, subject, { fire_at: timer.fireAt.toISOString(), timer: timer.kind }, at)
}

function dispatchEvent (name: string, subject: DispatchSubject, payload: Record<string, unknown>, at: Date, follows: PrefectEvent | null = null): PrefectEvent {
  const resource = { 'prefect.resource.id': `pushpool.dispatch.${subject.dispatchId}`, 'prefect.resource.name': subject.dispatchId }
  const related = [...runRelatedResources(subject.objects), { ...workerResource(subject.worker), 'prefect.resource.role': 'worker' }]
  return event(name, resource, capRelated(related), payload, at, follows)
}

function event (name: string, resource: ResourceLabels, related: ResourceLabels[], payload: Record<string, unknown>,
  at: Date, follows: PrefectEvent | null = null): PrefectEvent {
  const built: PrefectEvent = { id: randomUUID(), occurred: at.toISOString(), event: name, resource, related, payload }
  if (follows !== null && Math.abs(at.getTime() - Date.parse(follows.occurred)) < FOLLOWS_WINDOW_MS) built.follows = follows.id
  return built
}

function objectResource (kind: string, object: { id: string, name: string }): ResourceLabels {
  return { 'prefect.resource.id': `prefect.${kind}.${object.id}`, 'prefect.resource.role': kind, 'prefect.resource.name': object.name }
}

/** Prefect refuses an event with too many related resources; tags go first, the objects they tag stay. */
function capRelated (related: ResourceLabels[]): ResourceLabels[] {
  let excess = related.length - MAX_RELATED
  if (excess <= 0) return related
  return related.filter(resource => resource['prefect.resource.role'] !== 'tag' || excess-- <= 0)
}
