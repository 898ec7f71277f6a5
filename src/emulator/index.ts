import { credentials } from '@grpc/grpc-js'
import { plaintextEndpointOptions, type PlaintextEndpointOptions } from '../gcp/endpoint.ts'

export { startEmulator, type Emulator, type EmulatorLogger, type EmulatorOptions, type ExecutionEndPushOptions } from './server.ts'
export type { PlaintextEndpointOptions as EmulatorClientOptions } from '../gcp/endpoint.ts'
export type { FaultRule } from './faults.ts'
export type { TokenCreators } from './iam-credentials.ts'
export type { LogEntry } from './log-entries.ts'
export type { PushDelivery, PushEnvelope } from './pubsub-push.ts'
export type { TaskDelivery, TaskEnd } from './task-queues.ts'
export type {
  Condition, Container, EnvVar, Execution, ExecutionTemplate, HttpRequest, Job, Operation, Queue, RetryConfig, Task, TaskTemplate
} from './types.ts'

/** Options that aim a Google client at the emulator; synchronous, since the emulator has grpc-js loaded already. */
export function emulatorClientOptions (endpoint: string): PlaintextEndpointOptions {
  return plaintextEndpointOptions(endpoint, credentials.createInsecure())
}
