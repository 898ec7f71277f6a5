// google-gax turns each client's protos.json into gRPC service definitions with @grpc/proto-loader,
// which also builds a DescriptorProto object for every message and enum of the file and encodes every
// file's descriptor: material for gRPC server reflection, which a client never reads. That was ~45 ms
// of a cold first dispatch (the largest part of building the first Cloud Run client) and memory kept
// for the life of the process. gax also keys its cache by a hash of the whole JSON, stringified again
// for every client it builds.
//
// `useLeanServiceDefinitions` has gax build only what grpc-js's client reads (each service's methods:
// path, streaming flags, name, and the serializers, made exactly as proto-loader makes them, with
// gax's options), from the protobufjs Root gax already keeps for the same JSON to decode long-running
// operations, cached by the JSON object itself. test/gcp/grpc-definitions.test.ts compares the result
// with proto-loader's for every service pushpool's clients use.
import type * as protobuf from 'protobufjs'

/** The part of google-gax this touches (its gRPC client class and its cached protobufjs loader). */
export interface GaxModule {
  GrpcClient: { prototype: object }
  protobufFromJSON: (json: object) => protobuf.Root
}

/** What grpc-js's `makeClientConstructor` reads of a method. */
export interface MethodDefinition {
  path: string
  requestStream: boolean
  responseStream: boolean
  requestSerialize: (value: object) => Buffer
  requestDeserialize: (bytes: Buffer) => object
  responseSerialize: (value: object) => Buffer
  responseDeserialize: (bytes: Buffer) => object
  originalName: string
}

export type ServiceDefinitions = Record<string, Record<string, MethodDefinition>>

interface GrpcClientInstance {
  grpc: { loadPackageDefinition: (definitions: ServiceDefinitions) => unknown }
  loadProtoJSON: (json: object, ignoreCache?: boolean) => unknown
}

/** gax's options for proto-loader ("closely approximates the existing behavior of grpc.load"). */
export function gaxLoaderOptions (gax: GaxModule): protobuf.IConversionOptions {
  return (gax.GrpcClient as unknown as { defaultOptions: () => protobuf.IConversionOptions }).defaultOptions()
}

/** Every service of `root`, by full name without the leading dot, as proto-loader names them. */
export function serviceDefinitions (root: protobuf.Root, options: protobuf.IConversionOptions): ServiceDefinitions {
  root.resolveAll()
  const definitions: ServiceDefinitions = {}
  const visit = (namespace: protobuf.NamespaceBase): void => {
    for (const child of namespace.nestedArray) {
      if ('methodsArray' in child) {
        const service = child as protobuf.Service
        definitions[service.fullName.slice(1)] = methodDefinitions(service, options)
      } else if ('nestedArray' in child && !('fieldsArray' in child)) {
        visit(child as protobuf.Namespace)
      }
    }
  }
  visit(root)
  return definitions
}

function methodDefinitions (service: protobuf.Service, options: protobuf.IConversionOptions): Record<string, MethodDefinition> {
  const methods: Record<string, MethodDefinition> = {}
  const serviceName = service.fullName.slice(1)
  for (const method of service.methodsArray) {
    // resolveAll() has resolved both types.
    const request = method.resolvedRequestType!
    const response = method.resolvedResponseType!
    methods[method.name] = {
      path: `/${serviceName}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request, options),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response, options),
      // gax calls the methods by this name (GetJob → getJob); proto-loader camel-cases it.
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1)
    }
  }
  return methods
}

function serializer (type: protobuf.Type): (value: object) => Buffer {
  return value => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`)
    return type.encode(type.fromObject(value)).finish() as Buffer
  }
}

function deserializer (type: protobuf.Type, options: protobuf.IConversionOptions): (bytes: Buffer) => object {
  return bytes => type.toObject(type.decode(bytes), options)
}

const patched = new WeakSet<object>()

/**
 * Replaces gax's `GrpcClient.prototype.loadProtoJSON` (once per gax module): the clients built after
 * get lean service definitions, cached per JSON object. `ignoreCache` keeps gax's own path.
 */
export function useLeanServiceDefinitions (gax: GaxModule): void {
  const prototype = gax.GrpcClient.prototype as GrpcClientInstance
  if (patched.has(prototype)) return
  patched.add(prototype)
  const original = prototype.loadProtoJSON
  const loaded = new WeakMap<object, unknown>()
  prototype.loadProtoJSON = function (this: GrpcClientInstance, json: object, ignoreCache = false): unknown {
    if (ignoreCache) return original.call(this, json, true)
    let grpcObject = loaded.get(json)
    if (grpcObject === undefined) {
      grpcObject = this.grpc.loadPackageDefinition(serviceDefinitions(gax.protobufFromJSON(json), gaxLoaderOptions(gax)))
      loaded.set(json, grpcObject)
    }
    return grpcObject
  }
}

let leanGax: Promise<void> | null = null

/**
 * Imports google-gax (every Google client loads it anyway) and applies `useLeanServiceDefinitions`,
 * once per process. Called before a client is built.
 */
export function loadLeanGax (): Promise<void> {
  leanGax ??= import('google-gax').then(gax => { useLeanServiceDefinitions(gax.default as unknown as GaxModule) })
  return leanGax
}
