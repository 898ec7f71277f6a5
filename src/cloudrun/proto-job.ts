// REST-JSON Job → the object form the gRPC client serialises. The two agree except where proto3
// JSON uses a string for a well-known type: a Duration is "600s" in JSON but {seconds, nanos} on
// the wire, and the gRPC client refuses the string.
import type { V2Job } from '../jobconfig/v2-job.ts'
import { TemplateError } from '../failures.ts'

export interface ProtoDuration { seconds: number, nanos: number }

export function durationFromJson (value: string, field: string): ProtoDuration {
  const match = /^(\d+)(?:\.(\d{1,9}))?s$/.exec(value)
  if (match === null) throw new TemplateError(field, `${field} = ${JSON.stringify(value)} is not a duration: use whole seconds, e.g. "600s"`)
  return { seconds: Number(match[1]), nanos: Number((match[2] ?? '').padEnd(9, '0')) }
}

export function toProtoJob (job: V2Job): Record<string, unknown> {
  const task = job.template.template
  if (typeof task.timeout !== 'string') return job
  return {
    ...job,
    template: {
      ...job.template,
      template: { ...task, timeout: durationFromJson(task.timeout, 'job_body.template.template.timeout') }
    }
  }
}
