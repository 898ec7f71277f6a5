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

const LOCATION = /^projects\/([^/]+)\/locations\/([^/]+)$/
const JOB = /^(projects\/([^/]+)\/locations\/([^/]+))\/jobs\/([^/]+)$/
const EXECUTION = /^((projects\/([^/]+)\/locations\/([^/]+))\/jobs\/([^/]+))\/executions\/([^/]+)$/

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
