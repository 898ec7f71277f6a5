// The Cloud Run protos the production bundle gives the clients (scripts/protos-subset.ts): every
// service whose client src/ imports, each type they reach exactly as the package has it, and no
// other service. The Dockerfile test launches a run with it against the emulator. And Cloud Tasks'
// protos without the API versions pushpool does not call (artifact-cloud-tasks.test.ts arms a timer
// with them).
import t from 'tap'
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { cloudRunProtosSubset, cloudRunServicesUsed, protosWithout, RUN_PACKAGE } from '../../scripts/protos-subset.ts'

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const require = createRequire(join(REPO, 'package.json'))
const full = require('@google-cloud/run/build/protos/protos.json') as Record<string, any>

const runTypes = (json: Record<string, any>): Record<string, unknown> => RUN_PACKAGE.split('.').reduce((node, name) => node.nested[name], json).nested

t.test('the services are those of the clients src/gcp/clients.ts imports', async t => {
  t.same(cloudRunServicesUsed(join(REPO, 'src'), join(REPO, 'package.json')), [`${RUN_PACKAGE}.Executions`, `${RUN_PACKAGE}.Jobs`])
})

t.test('the subset keeps what Jobs and Executions reach, unchanged, and drops the other services', async t => {
  const services = [`${RUN_PACKAGE}.Executions`, `${RUN_PACKAGE}.Jobs`]
  const subset = cloudRunProtosSubset(full, services)
  const root = protobuf.Root.fromJSON(subset)
  t.doesNotThrow(() => root.resolveAll(), 'every reference in the subset resolves')

  for (const name of services) {
    const service = root.lookupService(name)
    for (const method of service.methodsArray) {
      t.ok(method.resolvedRequestType !== null && method.resolvedResponseType !== null, `${name}.${method.name}: request and response resolve`)
    }
  }
  // google-gax decodes long-running results by these names (jobs_client.js, executions_client.js).
  for (const lro of ['Job', 'Execution']) t.ok(root.lookupType(`${RUN_PACKAGE}.${lro}`), `${lro} is there for the long-running operations`)

  const kept = runTypes(subset)
  for (const [name, json] of Object.entries(kept)) t.same(json, runTypes(full)[name], `${name} as in the package`, { diagnostic: false })
  for (const dropped of ['Services', 'Revisions', 'WorkerPools', 'Builds', 'Service', 'WorkerPool']) t.notOk(dropped in kept, `${dropped} is left out`)
  t.ok(JSON.stringify(subset).length < JSON.stringify(full).length * 0.6, 'the subset is well under the whole')

  const outside = (json: Record<string, any>): Record<string, unknown> => ({ ...json.nested.google.nested, cloud: undefined })
  t.same(outside(subset), outside(full), 'every namespace but google.cloud.run.v2 is whole')
})

t.test('a service that is not Cloud Run\'s is refused', async t => {
  t.throws(() => cloudRunProtosSubset(full, ['google.longrunning.Operations']), /not a google\.cloud\.run\.v2 service/)
})

t.test('Cloud Tasks\' protos without v2beta2 and v2beta3: v2 whole, and nothing left refers to what went', async t => {
  // The package's exports map hides its protos folder; it sits two levels above its CommonJS entry.
  const tasks = require(join(require.resolve('@google-cloud/tasks'), '..', '..', '..', 'protos', 'protos.json')) as Record<string, any>
  const versions = (json: Record<string, any>): Record<string, unknown> => json.nested.google.nested.cloud.nested.tasks.nested
  const subset = protosWithout(tasks, ['google.cloud.tasks.v2beta2', 'google.cloud.tasks.v2beta3'])
  t.same(Object.keys(versions(subset)), ['v2'], 'only v2 is left of google.cloud.tasks')
  t.same(versions(subset).v2, versions(tasks).v2, 'v2 as in the package', { diagnostic: false })
  t.ok(protobuf.Root.fromJSON(subset).lookupService('google.cloud.tasks.v2.CloudTasks'), 'its service is there')
  t.ok(Object.keys(versions(tasks)).length === 3, 'the package itself is untouched')
  t.throws(() => protosWithout(tasks, ['google.cloud.tasks.v3']), /has no namespace google\.cloud\.tasks\.v3/, 'a namespace that is not there is an error')
  t.throws(() => protosWithout(tasks, ['google.protobuf']), /unresolvable|no such type/, 'so is taking one that what is left refers to')
})
