export { startEmulator, type Emulator, type EmulatorLogger, type EmulatorOptions } from './server.ts'
export { plaintextEndpointOptions as emulatorClientOptions, type PlaintextEndpointOptions as EmulatorClientOptions } from '../gcp/endpoint.ts'
export type { FaultRule } from './faults.ts'
export type { Condition, Container, EnvVar, Execution, ExecutionTemplate, Job, Operation, TaskTemplate } from './types.ts'
