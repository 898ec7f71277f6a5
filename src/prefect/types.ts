// The parts of Prefect's REST responses that pushpool reads. Field names are Prefect's own
// (snake_case), so a response can be typed without copying it.

export type StateType =
  | 'SCHEDULED' | 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED'
  | 'CANCELLED' | 'CRASHED' | 'PAUSED' | 'CANCELLING'

export interface State {
  id: string
  type: StateType
  name: string
  timestamp: string
  message?: string | null
  state_details?: {
    scheduled_time?: string | null
    [key: string]: unknown
  }
}

export interface FlowRun {
  id: string
  name: string
  flow_id: string
  deployment_id: string | null
  work_queue_id: string | null
  work_queue_name: string | null
  work_pool_id?: string | null
  work_pool_name: string | null
  state: State | null
  state_type?: StateType | null
  infrastructure_pid: string | null
  job_variables: Record<string, unknown> | null
  expected_start_time?: string | null
  next_scheduled_start_time: string | null
  start_time: string | null
  end_time?: string | null
  run_count?: number
  tags?: string[]
  labels?: Record<string, unknown>
  parameters?: Record<string, unknown>
  created?: string
}

export interface Deployment {
  id: string
  name: string
  flow_id: string
  updated?: string
  job_variables: Record<string, unknown> | null
  work_pool_name: string | null
  work_queue_name: string | null
  concurrency_limit?: number | null
  tags?: string[]
}

export interface Flow {
  id: string
  name: string
  tags?: string[]
}

export interface BaseJobTemplate {
  job_configuration: Record<string, unknown>
  variables: {
    type?: string
    properties?: Record<string, Record<string, unknown>>
    required?: string[]
    definitions?: Record<string, unknown>
    [key: string]: unknown
  }
}

export interface WorkPool {
  id: string
  name: string
  type: string
  base_job_template: BaseJobTemplate
  is_paused: boolean
  concurrency_limit: number | null
  default_queue_id?: string | null
}

export interface BlockDocument {
  id: string
  name: string | null
  data: Record<string, unknown>
  block_type_id?: string
  block_type?: { slug: string, name: string } | null
  block_schema?: { fields?: Record<string, unknown> } | null
}

export interface OrchestrationResult {
  state: State | null
  status: 'ACCEPT' | 'REJECT' | 'ABORT' | 'WAIT'
  details: { type: string, reason?: string | null, delay_seconds?: number }
}

export interface WorkQueue {
  id: string
  name: string
  concurrency_limit: number | null
  is_paused?: boolean
}

/** Prefect's terminal state types: a run in one of these is never moved again by pushpool. */
export const TERMINAL_STATE_TYPES: readonly StateType[] = ['COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED']
