// The Cloud Run Admin API v2 Job body in its REST/proto3-JSON (camelCase) form: exactly what
// Prefect's cloud-run-v2 worker sends, and what the gRPC client accepts as a plain object.
// Only the fields pushpool reads are typed; the rest pass through untouched.

export interface V2EnvVar {
  name: string
  value?: string
  valueSource?: { secretKeyRef: { secret: string, version: string } }
}

export interface V2Container {
  name?: string
  image?: string
  command?: string[]
  args?: string[]
  env?: V2EnvVar[]
  resources?: { limits?: Record<string, string>, [key: string]: unknown }
  volumeMounts?: Array<{ name: string, mountPath: string }>
  [key: string]: unknown
}

export interface V2TaskTemplate {
  containers: V2Container[]
  /** A GPU job's accelerator, e.g. {accelerator: "nvidia-l4"} (see gpu.ts). */
  nodeSelector?: { accelerator?: string, [key: string]: unknown }
  volumes?: Array<Record<string, unknown>>
  maxRetries?: number
  timeout?: string
  serviceAccount?: string
  vpcAccess?: { connector?: string | null, egress?: string, [key: string]: unknown }
  [key: string]: unknown
}

export interface V2ExecutionTemplate {
  labels?: Record<string, string>
  annotations?: Record<string, string>
  parallelism?: number
  taskCount?: number
  template: V2TaskTemplate
  [key: string]: unknown
}

export interface V2Job {
  client?: string
  launchStage?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  template: V2ExecutionTemplate
  [key: string]: unknown
}
