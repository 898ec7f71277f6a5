// Everything that knows about protobuf: the service definitions the real clients speak, and converting
// between the gRPC wire objects (what the deserializers hand us and the serializers expect back) and the
// REST/proto3-JSON form the rest of the emulator works in.
import { createRequire } from 'node:module'
import path from 'node:path'
import type { ServiceDefinition } from '@grpc/grpc-js'
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

const require = createRequire(import.meta.url)

/** The descriptors each client package bundles (protos.json), one per package. */
const PACKAGES = {
  run: () => require('@google-cloud/run/build/protos/protos.json') as protobuf.INamespace,
  secretManager: () => require('@google-cloud/secret-manager/build/protos/protos.json') as protobuf.INamespace,
  // @google-cloud/tasks' exports map hides its protos folder; it sits two levels above its cjs entry.
  tasks: () => require(path.join(path.dirname(require.resolve('@google-cloud/tasks')), '..', '..', 'protos', 'protos.json')) as protobuf.INamespace
}
type PackageName = keyof typeof PACKAGES

const PACKAGE_OF: Record<ServiceName, PackageName> = {
  [SERVICE.jobs]: 'run',
  [SERVICE.executions]: 'run',
  [SERVICE.operations]: 'run',
  [SERVICE.secretManager]: 'secretManager',
  [SERVICE.tasks]: 'tasks'
}

/** No defaults and no virtual oneof fields, so a request looks like REST JSON (an absent field is absent;
 *  a oneof member such as maxRetries: 0 is present only when set). */
const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: String, enums: String, defaults: false, oneofs: false }

const roots = new Map<PackageName, protobuf.Root>()

/** A package's descriptors, parsed on first use (20–40 ms each), so start-up parses none. */
function root (name: PackageName): protobuf.Root {
  let loaded = roots.get(name)
  if (!loaded) {
    loaded = protobuf.Root.fromJSON(PACKAGES[name]())
    loaded.resolveAll()
    roots.set(name, loaded)
  }
  return loaded
}

/** Parses the packages' descriptors in the background, one per turn of the event loop, so that the
 *  first call of a test (often timed, as a webhook's launch is) rarely has to wait for them. */
export function warmUp (): void {
  const names = Object.keys(PACKAGES) as PackageName[]
  const next = (): void => {
    const name = names.shift()
    if (name === undefined) return
    root(name)
    setImmediate(next)
  }
  setImmediate(next)
}

/**
 * The gRPC service definition for the given methods, with (de)serializers that resolve their message
 * types on the first call: what @grpc/proto-loader would build (same paths, same conversion options),
 * without parsing any descriptor before a client calls. Methods left out answer UNIMPLEMENTED.
 */
export function serviceDefinition (service: ServiceName, methods: string[]): ServiceDefinition {
  return Object.fromEntries(methods.map(method => {
    let types: MethodTypes | undefined
    const resolve = (): MethodTypes => (types ??= methodTypes(service, method))
    const serialize = (pick: (t: MethodTypes) => protobuf.Type) => (value: Plain): Buffer => {
      const type = pick(resolve())
      return Buffer.from(type.encode(type.fromObject(value)).finish())
    }
    const deserialize = (pick: (t: MethodTypes) => protobuf.Type) => (bytes: Buffer): Plain => {
      const type = pick(resolve())
      return type.toObject(type.decode(bytes), DECODE_OPTIONS)
    }
    return [method, {
      path: `/${service}/${method}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: serialize(t => t.request),
      requestDeserialize: deserialize(t => t.request),
      responseSerialize: serialize(t => t.response),
      responseDeserialize: deserialize(t => t.response)
    }]
  }))
}

export function methodTypes (service: ServiceName, method: string): MethodTypes {
  const found = root(PACKAGE_OF[service]).lookup(service)
  if (!(found instanceof protobuf.Service)) throw new Error(`Unknown service ${service}`)
  const rpc = found.methods[method]
  if (!rpc?.resolvedRequestType || !rpc.resolvedResponseType) throw new Error(`${service} has no method ${method}`)
  return { request: rpc.resolvedRequestType, response: rpc.resolvedResponseType }
}

function lookupType (fullName: string): protobuf.Type {
  for (const name of Object.keys(PACKAGES) as PackageName[]) {
    const found = root(name).lookup(fullName)
    if (found instanceof protobuf.Type) return found
  }
  throw new Error(`Unknown message type ${fullName}`)
}

/** REST form → the object the serializer takes. */
export function toWire (type: protobuf.Type, value: Plain): Plain {
  return convertFields(type, value, messageToWire)
}

/** What the deserializer produced → REST form. */
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
