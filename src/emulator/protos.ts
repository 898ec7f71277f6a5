// Everything that knows about protobuf: loading the service definitions the real clients speak, and
// converting between the gRPC wire objects (what @grpc/proto-loader hands us and expects back) and the
// REST/proto3-JSON form the rest of the emulator works in.
import { createRequire } from 'node:module'
import path from 'node:path'
import type { ServiceDefinition } from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import protobuf from 'protobufjs'

export type Plain = Record<string, unknown>

export const SERVICE = {
  jobs: 'google.cloud.run.v2.Jobs',
  executions: 'google.cloud.run.v2.Executions',
  operations: 'google.longrunning.Operations',
  secretManager: 'google.cloud.secretmanager.v1.SecretManagerService',
  tasks: 'google.cloud.tasks.v2.CloudTasks'
} as const

export type ServiceName = typeof SERVICE[keyof typeof SERVICE]

export const TYPE_URL = {
  job: 'type.googleapis.com/google.cloud.run.v2.Job',
  execution: 'type.googleapis.com/google.cloud.run.v2.Execution'
} as const

export interface MethodTypes {
  request: protobuf.Type
  response: protobuf.Type
}

interface Protocol {
  definitions: Record<ServiceName, ServiceDefinition>
  roots: protobuf.Root[]
}

const require = createRequire(import.meta.url)

let loaded: Protocol | undefined

/** Loaded once per process on first use: parsing the protos costs ~150 ms. */
function protocol (): Protocol {
  if (loaded) return loaded
  const runProtos = path.dirname(require.resolve('@google-cloud/run/build/protos/protos.json'))
  const secretManagerProtos = path.dirname(require.resolve('@google-cloud/secret-manager/build/protos/protos.json'))
  // @google-cloud/tasks' exports map hides its protos folder too; it sits two levels above its cjs entry.
  const tasksProtos = path.join(path.dirname(require.resolve('@google-cloud/tasks')), '..', '..', 'protos')
  // google-gax's exports map hides its package.json, so find its common protos relative to its main file.
  const gaxProtos = path.join(path.dirname(require.resolve('google-gax')), '..', 'protos')
  const packageDefinition = protoLoader.loadSync([
    'google/cloud/run/v2/job.proto',
    'google/cloud/run/v2/execution.proto',
    'google/longrunning/operations.proto',
    'google/cloud/secretmanager/v1/service.proto',
    'google/cloud/tasks/v2/cloudtasks.proto'
  ], {
    // No defaults and no virtual oneof fields: requests then look like REST JSON, where an absent field
    // is absent and a oneof member (e.g. maxRetries: 0) is present only when the caller set it.
    keepCase: false, longs: String, enums: String, defaults: false, oneofs: false,
    includeDirs: [runProtos, secretManagerProtos, tasksProtos, gaxProtos]
  })
  const definitions = Object.fromEntries(Object.values(SERVICE).map(name =>
    [name, packageDefinition[name] as ServiceDefinition])) as Record<ServiceName, ServiceDefinition>
  // Reflection (field types for the conversion, encoding Any) uses the bundled descriptors of the same packages.
  const roots = [
    protobuf.Root.fromJSON(require('@google-cloud/run/build/protos/protos.json')),
    protobuf.Root.fromJSON(require('@google-cloud/secret-manager/build/protos/protos.json')),
    protobuf.Root.fromJSON(require(path.join(tasksProtos, 'protos.json')))
  ]
  for (const root of roots) root.resolveAll()
  loaded = { definitions, roots }
  return loaded
}

/** Loads the protos now (synchronously, ~150 ms), e.g. while other start-up work runs off the main thread. */
export function loadProtos (): void {
  protocol()
}

export function serviceDefinition (service: ServiceName): ServiceDefinition {
  return protocol().definitions[service]
}

export function methodTypes (service: ServiceName, method: string): MethodTypes {
  for (const root of protocol().roots) {
    const found = root.lookup(service)
    if (found instanceof protobuf.Service) {
      const rpc = found.methods[method]
      if (!rpc?.resolvedRequestType || !rpc.resolvedResponseType) throw new Error(`${service} has no method ${method}`)
      return { request: rpc.resolvedRequestType, response: rpc.resolvedResponseType }
    }
  }
  throw new Error(`Unknown service ${service}`)
}

function lookupType (fullName: string): protobuf.Type {
  for (const root of protocol().roots) {
    const found = root.lookup(fullName)
    if (found instanceof protobuf.Type) return found
  }
  throw new Error(`Unknown message type ${fullName}`)
}

/** REST form → the object proto-loader serializes. */
export function toWire (type: protobuf.Type, value: Plain): Plain {
  return convertFields(type, value, messageToWire)
}

/** What proto-loader deserialized → REST form. */
export function fromWire (type: protobuf.Type, value: Plain): Plain {
  return convertFields(type, value, messageFromWire)
}

type MessageConverter = (type: protobuf.Type, value: unknown) => unknown

function convertFields (type: protobuf.Type, value: Plain, convert: MessageConverter): Plain {
  const out: Plain = {}
  for (const field of type.fieldsArray) {
    const fieldValue = value[field.name]
    if (fieldValue === undefined || fieldValue === null) continue
    const fieldType = field.resolvedType
    if (!(fieldType instanceof protobuf.Type)) {
      out[field.name] = fieldValue
    } else if (field.map) {
      out[field.name] = Object.fromEntries(Object.entries(fieldValue as Plain).map(([k, v]) => [k, convert(fieldType, v)]))
    } else if (field.repeated) {
      out[field.name] = (fieldValue as unknown[]).map(v => convert(fieldType, v))
    } else {
      out[field.name] = convert(fieldType, fieldValue)
    }
  }
  return out
}

function messageToWire (type: protobuf.Type, value: unknown): unknown {
  switch (type.fullName) {
    case '.google.protobuf.Timestamp': return timestampToWire(value as string)
    case '.google.protobuf.Duration': return durationToWire(value as string)
    case '.google.protobuf.Any': return packAny(value as Plain)
    default: return toWire(type, value as Plain)
  }
}

function messageFromWire (type: protobuf.Type, value: unknown): unknown {
  switch (type.fullName) {
    case '.google.protobuf.Timestamp': return timestampFromWire(value as WireSeconds)
    case '.google.protobuf.Duration': return durationFromWire(value as WireSeconds)
    default: return fromWire(type, value as Plain)
  }
}

interface WireSeconds {
  seconds?: string | number
  nanos?: number
}

function timestampToWire (iso: string): WireSeconds {
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) throw new Error(`Invalid timestamp '${iso}'`)
  const seconds = Math.floor(ms / 1000)
  return { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1e6 }
}

function timestampFromWire ({ seconds = 0, nanos = 0 }: WireSeconds): string {
  return new Date(Number(seconds) * 1000 + Math.floor(nanos / 1e6)).toISOString()
}

const DURATION = /^(\d+)(?:\.(\d{1,9}))?s$/

function durationToWire (text: string): WireSeconds {
  const m = DURATION.exec(text)
  if (!m) throw new Error(`Invalid duration '${text}': expected seconds with an 's' suffix, like "600s".`)
  return { seconds: m[1], nanos: Number((m[2] ?? '').padEnd(9, '0')) }
}

function durationFromWire ({ seconds = 0, nanos = 0 }: WireSeconds): string {
  if (!nanos) return `${seconds}s`
  return `${seconds}.${String(nanos).padStart(9, '0').replace(/0+$/, '')}s`
}

/** Packs a JSON-style Any (`{'@type': url, ...fields}`) into `{type_url, value}` bytes. */
function packAny ({ '@type': typeUrl, ...fields }: Plain): Plain {
  const url = String(typeUrl)
  const type = lookupType(url.slice(url.lastIndexOf('/') + 1))
  return { type_url: url, value: type.encode(type.fromObject(toWire(type, fields))).finish() }
}
