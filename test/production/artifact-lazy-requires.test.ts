// google-gax requires, as it loads, modules pushpool's clients seldom or never use: proto-loader
// (with protobufjs's descriptor.proto types), and generated classes for the IAM, Locations and
// Operations APIs (gax polls an operation that is not yet done with the last). The artifact defers
// each until one of its properties is read (LAZY_REQUIRES in scripts/build.ts); this holds the
// artifact's gax to that, and checks that each still loads and works when it is read.
import t from 'tap'
import { builtArtifact, importChunk } from './artifact.ts'

interface Gax {
  protobuf: { roots: Record<string, any>, Root: { prototype: Record<string, unknown> } }
  IamProtos: any
  LocationProtos: any
  operationsProtos: any
  fallback: { IamProtos: any }
  GrpcClient: new () => { loadProtoJSON: (json: object, ignoreCache?: boolean) => any }
  Operation: new (operation: object, descriptor: object, backoff: object) => { getOperation: () => Promise<unknown> }
  createDefaultBackoffSettings: () => object
}

t.test('the artifact\'s google-gax loads proto-loader and its generated classes only when they are read', async t => {
  const dist = await builtArtifact(t)
  const chunk = await importChunk<{ default: Gax }>(dist, 'google-gax')
  if (chunk === undefined) return t.fail('no google-gax chunk in the artifact')
  const gax = chunk.default
  // The generated classes register their root in protobufjs's `roots` as they load, and
  // proto-loader loads protobufjs's descriptor extension, which adds Root#toDescriptor.
  t.same(Object.keys(gax.protobuf.roots), [], 'no generated classes were loaded with gax')
  t.equal(gax.protobuf.Root.prototype.toDescriptor, undefined, 'nor proto-loader')

  // Polling a long-running operation that is not done (a real CreateJob's, for one) builds its
  // GetOperation request with the Operations classes.
  const requests: Array<{ name: string }> = []
  const descriptor = {
    operationsClient: { getOperationInternal: async (request: { name: string }) => { requests.push(request); return [{ name: request.name, done: true }] } },
    responseDecoder: () => ({}),
    metadataDecoder: () => ({})
  }
  await new gax.Operation({ name: 'operations/create-job', done: false }, descriptor, gax.createDefaultBackoffSettings()).getOperation()
  t.same(requests.map(request => [request.constructor.name, request.name]), [['GetOperationRequest', 'operations/create-job']], 'polling an operation builds its request')
  t.same(Object.keys(gax.protobuf.roots), ['operations_protos'], 'with the Operations classes, loaded then')

  t.type(gax.IamProtos.google.iam.v1.Policy, 'function', 'reading IamProtos loads the IAM classes')
  t.equal(gax.fallback.IamProtos.google.iam.v1.Policy, gax.IamProtos.google.iam.v1.Policy, 'the fallback\'s are the same module')
  t.type(gax.LocationProtos.google.cloud.location.Location, 'function', 'the Locations classes load')
  t.equal(gax.operationsProtos.google.longrunning.GetOperationRequest, requests[0].constructor, 'gax\'s export of the Operations classes is the module polling loaded')
  t.same(Object.keys(gax.protobuf.roots).sort(), ['iam_protos', 'locations_protos', 'operations_protos'], 'each loaded when it was read')
  t.equal(gax.protobuf.Root.prototype.toDescriptor, undefined, 'still without proto-loader')

  // gax's own path to gRPC definitions, which pushpool replaces (src/gcp/grpc-definitions.ts),
  // still works: it loads proto-loader on its first call.
  const json = { nested: { demo: { nested: { Ping: { fields: { id: { type: 'string', id: 1 } } }, Pinger: { methods: { Ping: { requestType: 'Ping', responseType: 'Ping' } } } } } } }
  const loaded = new gax.GrpcClient().loadProtoJSON(json, true)
  t.type(loaded.demo.Pinger, 'function', 'gax\'s loadProtoJSON makes a gRPC client class with proto-loader')
  t.type(gax.protobuf.Root.prototype.toDescriptor, 'function', 'which has now loaded')
})
