// The part of @google-cloud/run's protos.json that pushpool's Cloud Run clients use, for the
// production bundle. A generated client hands its package's whole protos.json to google-gax, which
// turns every message of it into protobufjs types and gRPC descriptors when the first client is
// built: for Cloud Run that is every service (Services, Revisions, WorkerPools, Builds, …) where
// pushpool calls two. The subset keeps, of google.cloud.run.v2, the services whose clients src/
// imports and every message and enum they reach (long-running results included), and every other
// namespace (google.longrunning, google.api, google.protobuf, google.iam, …) whole, so each type
// the clients meet is the same JSON as in the package. Cloud Tasks' protos.json, whose client
// pushpool builds for its timers, loses the API versions it does not call (protosWithout).
import { readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import protobuf from 'protobufjs'

export const RUN_PACKAGE = 'google.cloud.run.v2'
/** Where src/ imports a Cloud Run client from (each client from its own file; see src/gcp/clients.ts). */
const CLIENT_IMPORT = /@google-cloud\/run\/build\/src\/v2\/(\w+_client)\.js/g
/** How a generated client names its service, e.g. `this._protos.google.cloud.run.v2.Jobs`. */
const CLIENT_SERVICE = /this\._protos\.google\.cloud\.run\.v2\.(\w+)/

type Json = Record<string, any>

/** The Cloud Run services (`google.cloud.run.v2.Jobs`, …) whose clients the files under `srcDir` import. */
export function cloudRunServicesUsed (srcDir: string, requireFrom: string): string[] {
  const require = createRequire(requireFrom)
  const clients = new Set<string>()
  for (const file of readdirSync(srcDir, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts')) continue
    for (const match of readFileSync(join(srcDir, file), 'utf8').matchAll(CLIENT_IMPORT)) clients.add(match[1])
  }
  return [...clients].sort().map(client => {
    const path = require.resolve(`@google-cloud/run/build/src/v2/${client}.js`)
    const service = CLIENT_SERVICE.exec(readFileSync(path, 'utf8'))?.[1]
    if (service === undefined) throw new Error(`${path}: no google.cloud.run.v2 service found; has the package's layout changed?`)
    return `${RUN_PACKAGE}.${service}`
  })
}

/** protos.json with only `services` (and what they reach) left in google.cloud.run.v2. */
export function cloudRunProtosSubset (full: Json, services: string[]): Json {
  const root = protobuf.Root.fromJSON(full)
  root.resolveAll()
  const kept = new Set<protobuf.ReflectionObject>()
  const visit = (object: protobuf.ReflectionObject | null): void => {
    if (object === null || kept.has(object)) return
    kept.add(object)
    if (object instanceof protobuf.Service) {
      for (const method of object.methodsArray) {
        method.resolve()
        visit(method.resolvedRequestType)
        visit(method.resolvedResponseType)
        // A long-running method's result types are named only in an option, as google-gax reads them.
        for (const option of ['response_type', 'metadata_type']) {
          const name = method.options?.[`(google.longrunning.operation_info).${option}`] as string | undefined
          if (name !== undefined) visit(object.parent!.lookup(name))
        }
      }
    } else if (object instanceof protobuf.Type) {
      for (const field of object.fieldsArray) {
        field.resolve()
        visit(field.resolvedType)
      }
      for (const nested of object.nestedArray) visit(nested)
    }
  }
  for (const name of services) {
    const service = root.lookupService(name)
    if (!service.fullName.startsWith(`.${RUN_PACKAGE}.`)) throw new Error(`${name} is not a ${RUN_PACKAGE} service`)
    visit(service)
  }
  const runPackage = root.lookup(RUN_PACKAGE) as protobuf.Namespace
  const subset = structuredClone(full)
  const runJson = RUN_PACKAGE.split('.').reduce((node: Json, name) => node.nested[name], subset)
  runJson.nested = Object.fromEntries(Object.entries(runJson.nested as Json)
    .filter(([name]) => kept.has(runPackage.nested![name])))
  return subset
}

/**
 * protos.json without the namespaces named (a package's other API versions, say); fails if what is
 * left refers to any of them, so that what the client loads resolves as it did whole.
 */
export function protosWithout (full: Json, namespaces: string[]): Json {
  const subset = structuredClone(full)
  for (const name of namespaces) {
    const path = name.split('.')
    const last = path.pop()!
    const parent = path.reduce((node: Json | undefined, part) => node?.nested?.[part], subset)
    if (parent?.nested?.[last] === undefined) throw new Error(`protos.json has no namespace ${name}`)
    delete parent.nested[last]
  }
  protobuf.Root.fromJSON(subset).resolveAll()
  return subset
}
