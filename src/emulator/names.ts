import { invalidArgument } from './rpc-error.ts'

export interface LocationName {
  project: string
  location: string
  /** `projects/{project}/locations/{location}` */
  parent: string
}

export interface JobName extends LocationName {
  job: string
}

export interface ExecutionName extends JobName {
  jobName: string
  execution: string
}

export interface QueueName extends LocationName {
  queue: string
  /** `projects/{project}/locations/{location}/queues/{queue}` */
  queueName: string
}

export interface TaskName extends QueueName {
  task: string
}

const LOCATION = /^projects\/([^/]+)\/locations\/([^/]+)$/
const JOB = /^(projects\/([^/]+)\/locations\/([^/]+))\/jobs\/([^/]+)$/
const EXECUTION = /^((projects\/([^/]+)\/locations\/([^/]+))\/jobs\/([^/]+))\/executions\/([^/]+)$/

const QUEUE = /^(projects\/([^/]+)\/locations\/([^/]+))\/queues\/([^/]+)$/
const TASK = /^((projects\/([^/]+)\/locations\/([^/]+))\/queues\/([^/]+))\/tasks\/([^/]*)$/

/** Cloud Tasks' ID rules, from the Queue.name and Task.name comments in the v2 protos. */
export const QUEUE_ID = /^[A-Za-z0-9-]{1,100}$/
export const TASK_ID = /^[A-Za-z0-9_-]{1,500}$/

/** Cloud Run's resource-name rule for jobs (and services): a DNS label of at most 63 characters. */
export const JOB_ID = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/

export function parseLocationName (name: string | undefined): LocationName {
  const m = LOCATION.exec(name ?? '')
  if (!m) throw invalidArgument(`Invalid parent: '${name ?? ''}'. Expected projects/{project}/locations/{location}.`)
  return { project: m[1], location: m[2], parent: m[0] }
}

export function parseJobName (name: string | undefined): JobName {
  const m = JOB.exec(name ?? '')
  if (!m) throw invalidArgument(`Invalid job name: '${name ?? ''}'. Expected projects/{project}/locations/{location}/jobs/{job}.`)
  return { parent: m[1], project: m[2], location: m[3], job: m[4] }
}

export function parseExecutionName (name: string | undefined): ExecutionName {
  const m = EXECUTION.exec(name ?? '')
  if (!m) {
    throw invalidArgument(`Invalid execution name: '${name ?? ''}'. ` +
      'Expected projects/{project}/locations/{location}/jobs/{job}/executions/{execution}.')
  }
  return { jobName: m[1], parent: m[2], project: m[3], location: m[4], job: m[5], execution: m[6] }
}

export function parseQueueName (name: string | undefined): QueueName {
  const m = QUEUE.exec(name ?? '')
  if (!m || !QUEUE_ID.test(m[4])) {
    throw invalidArgument(`Invalid queue name: '${name ?? ''}'. Queue name must be formatted: ` +
      '"projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>", with a QUEUE_ID of at most 100 letters, digits or hyphens.')
  }
  return { parent: m[1], project: m[2], location: m[3], queue: m[4], queueName: m[0] }
}

export function parseTaskName (name: string | undefined): TaskName {
  const m = TASK.exec(name ?? '')
  if (!m || !QUEUE_ID.test(m[5]) || !TASK_ID.test(m[6])) {
    throw invalidArgument(`Invalid task name: '${name ?? ''}'. Task name must be formatted: ` +
      '"projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>/tasks/<TASK_ID>", with a TASK_ID of at most ' +
      '500 letters, digits, hyphens or underscores.')
  }
  return { queueName: m[1], parent: m[2], project: m[3], location: m[4], queue: m[5], task: m[6] }
}
