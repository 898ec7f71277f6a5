// The lean gRPC service definitions against @grpc/proto-loader's, which google-gax would otherwise
// build: the same services and methods, the same paths, names and streaming, and messages that encode
// to the same bytes and decode to the same objects with gax's options. Pure: no peer.
import t from 'tap'
import { readFileSync } from 'node:fs'
import * as protoLoader from '@grpc/proto-loader'
import protobuf from 'protobufjs'
import gaxModule from 'google-gax'
import { credentials } from '@grpc/grpc-js'
import { OAuth2Client } from 'google-auth-library'
import { JobsClient } from '@google-cloud/run/build/src/v2/jobs_client.js'
import { gaxLoaderOptions, serviceDefinitions, useLeanServiceDefinitions, type GaxModule, type MethodDefinition } from '../../src/gcp/grpc-definitions.ts'

const gax = gaxModule as unknown as GaxModule
const options = gaxLoaderOptions(gax)

/** A package's protos JSON, read by path: the packages do not all export it. */
function packageProtos (pkg: string, file = 'protos.json'): object {
  return JSON.parse(readFileSync(new URL(`../../node_modules/${pkg}/build/protos/${file}`, import.meta.url), 'utf8')) as object
}

// Every protos JSON a client of pushpool loads: Cloud Run, Secret Manager, Cloud Tasks, and gax's
// own long-running operations, locations and IAM protos that each client adds.
const PROTOS: Record<string, object> = {
  'Cloud Run': packageProtos('@google-cloud/run'),
  'Secret Manager': packageProtos('@google-cloud/secret-manager'),
  'Cloud Tasks': packageProtos('@google-cloud/tasks'),
  'gax operations': packageProtos('google-gax', 'operations.json'),
  'gax locations': packageProtos('google-gax', 'locations.json'),
  'gax IAM': packageProtos('google-gax', 'iam_service.json')
}

type Definitions = Record<string, Record<string, MethodDefinition> | { format: string }>

/** proto-loader's services (it also lists every message and enum, each with a `format`). */
function loaderServices (json: object): Record<string, Record<string, MethodDefinition>> {
  const all = protoLoader.fromJSON(json, options) as unknown as Definitions
  return Object.fromEntries(Object.entries(all).filter(([, value]) => !('format' in value))) as Record<string, Record<string, MethodDefinition>>
}

for (const [protos, json] of Object.entries(PROTOS)) {
  t.test(`${protos}: the services and methods proto-loader makes`, async t => {
    const lean = serviceDefinitions(protobuf.Root.fromJSON(json), options)
    const loader = loaderServices(json)
    t.ok(Object.keys(loader).length > 0, 'the file has services')
    t.same(Object.keys(lean).sort(), Object.keys(loader).sort())
    for (const [service, methods] of Object.entries(loader)) {
      t.same(Object.keys(lean[service]!).sort(), Object.keys(methods).sort(), service)
      for (const [name, method] of Object.entries(methods)) {
        const mine = lean[service]![name]!
        t.same(
          { path: mine.path, requestStream: mine.requestStream, responseStream: mine.responseStream, originalName: mine.originalName },
          { path: method.path, requestStream: method.requestStream, responseStream: method.responseStream, originalName: method.originalName },
          `${service}.${name}`)
      }
    }
  })
}

t.test('Cloud Run messages encode and decode as proto-loader\'s serializers do', async t => {
  const json = PROTOS['Cloud Run']!
  const lean = serviceDefinitions(protobuf.Root.fromJSON(json), options)['google.cloud.run.v2.Jobs']!
  const loader = loaderServices(json)['google.cloud.run.v2.Jobs']!
  const createJob = {
    parent: 'projects/p/locations/us-central1',
    jobId: 'prefect-abc',
    job: {
      labels: { 'prefect-io': 'x' },
      launchStage: 'BETA',
      template: {
        taskCount: 1,
        template: {
          containers: [{
            image: 'us-docker.pkg.dev/p/r/img:1',
            args: ['python', '-m', 'prefect.engine'],
            env: [{ name: 'A', value: '1' }, { name: 'S', valueSource: { secretKeyRef: { secret: 's', version: 'latest' } } }],
            resources: { limits: { cpu: '1000m', memory: '512Mi' } }
          }],
          timeout: { seconds: 3600 },
          maxRetries: 0,
          executionEnvironment: 'EXECUTION_ENVIRONMENT_GEN2'
        }
      }
    }
  }
  t.same(lean.CreateJob!.requestSerialize(createJob), loader.CreateJob!.requestSerialize(createJob))
  t.throws(() => lean.CreateJob!.requestSerialize([] as unknown as object), /expected object with CreateJobRequest structure, got array/)

  // A reply as the wire carries it: longs as strings, enums by name, defaults filled in, oneofs named.
  const job = {
    name: 'projects/p/locations/us-central1/jobs/prefect-abc',
    generation: '7',
    createTime: { seconds: '1765000000', nanos: 5 },
    executionCount: 3,
    terminalCondition: { type: 'Ready', state: 'CONDITION_SUCCEEDED', reason: 'CONTAINER_MISSING' },
    template: { template: { containers: [{ image: 'i', command: ['sh'] }], executionEnvironment: 'EXECUTION_ENVIRONMENT_GEN2' } }
  }
  const bytes = loader.GetJob!.responseSerialize(job)
  t.same(lean.GetJob!.responseSerialize(job), bytes)
  const decoded = lean.GetJob!.responseDeserialize(bytes) as Record<string, unknown>
  t.same(decoded, loader.GetJob!.responseDeserialize(bytes))
  t.equal(decoded.generation, '7', 'longs as strings')
  t.match(decoded.terminalCondition, { state: 'CONDITION_SUCCEEDED', reasons: 'reason', reason: 'CONTAINER_MISSING' }, 'enums by name, oneofs named')
  t.same(decoded.labels, {}, 'defaults filled in')
})

t.test('gax, once patched, builds lean definitions once per JSON and keeps its own path for ignoreCache', async t => {
  useLeanServiceDefinitions(gax)
  useLeanServiceDefinitions(gax)
  const GrpcClient = gaxModule.GrpcClient
  const json = PROTOS['Cloud Run']!
  const loaded = new GrpcClient().loadProtoJSON(json) as unknown as { google: { cloud: { run: { v2: Record<string, { prototype: Record<string, unknown>, service: object }> } } } }
  t.equal(new GrpcClient().loadProtoJSON(json), loaded, 'cached by the JSON object, across gax clients')
  const Jobs = loaded.google.cloud.run.v2.Jobs!
  const getJob = Jobs.prototype.getJob as unknown as MethodDefinition
  t.type(getJob, 'function', 'called by its camel-cased name')
  t.same({ path: getJob.path, requestStream: getJob.requestStream, responseStream: getJob.responseStream }, { path: '/google.cloud.run.v2.Jobs/GetJob', requestStream: false, responseStream: false })
  t.notOk('Job' in loaded.google.cloud.run.v2, 'no message definitions')
  const full = new GrpcClient().loadProtoJSON(json, true) as unknown as typeof loaded
  t.not(full, loaded)
  t.match(full.google.cloud.run.v2.Job, { format: 'Protocol Buffer 3 DescriptorProto' }, 'ignoreCache: proto-loader\'s, with the descriptors')
})

t.test('a Cloud Run client built after the patch takes the lean definitions', async t => {
  useLeanServiceDefinitions(gax)
  const client = new JobsClient({ apiEndpoint: '127.0.0.1', port: 9, sslCreds: credentials.createInsecure(), universeDomain: 'googleapis.com', authClient: new OAuth2Client() })
  t.teardown(() => client.close())
  const protos = (client as unknown as { _protos: { google: { cloud: { run: { v2: Record<string, unknown> } } } } })._protos
  t.type(protos.google.cloud.run.v2.Jobs, 'function')
  t.notOk('Job' in protos.google.cloud.run.v2, 'gax called the patched loadProtoJSON: no message definitions')
})
