// On the emulator's plaintext channel pushpool's Cloud Run clients still send the identity's bearer
// token with each call, so the emulator knows who calls; a token that cannot be had fails the call as
// gRPC's call credentials would.
import t from 'tap'
import { Impersonated } from 'google-auth-library'
import { v2 } from '@google-cloud/run'
import { GoogleClients } from '../../src/gcp/clients.ts'
import { IdentityResolver } from '../../src/gcp/credentials.ts'
import { withBearerToken } from '../../src/gcp/plaintext-auth.ts'
import { classifyFailure } from '../../src/cloudrun/outcomes.ts'
import { emulatorClientOptions, startEmulator } from '../../src/emulator/index.ts'

const PUSHPOOL = 'pushpool@p.iam.gserviceaccount.com'
const LAUNCHER = 'launcher@p.iam.gserviceaccount.com'
const PARENT = 'projects/p/locations/us-central1'

const emu = await startEmulator({ metadataServer: { serviceAccount: PUSHPOOL }, tokenCreators: { [LAUNCHER]: [`serviceAccount:${PUSHPOOL}`] } })
t.teardown(() => emu.close())
process.env.GCE_METADATA_HOST = emu.httpEndpoint

const identities = new IdentityResolver({
  credentialsSecret: null, fallbackProject: 'p', emulated: true, iamCredentialsEndpoint: emu.httpUrl, readSecret: async () => ''
})
const google = new GoogleClients({ cloudRunEndpoint: emu.endpoint, secretManagerEndpoint: null })
t.teardown(() => google.close())

t.test('every RPC pushpool makes carries the identity\'s token, paged lists included', async t => {
  const clients = await google.cloudRunFor(await identities.resolve(null, LAUNCHER))
  emu.resetCalls()
  const job = { template: { template: { containers: [{ image: 'us-docker.pkg.dev/p/r/img:1' }] } } }
  const [operation] = await clients.jobs.createJob({ parent: PARENT, jobId: 'keyless', job })
  await operation.promise()
  await clients.jobs.runJob({ name: `${PARENT}/jobs/keyless` })
  for await (const execution of clients.executions.listExecutionsAsync({ parent: `${PARENT}/jobs/keyless` }, { autoPaginate: false })) {
    t.equal(execution.creator, LAUNCHER)
  }
  t.same(emu.callers(), { CreateJob: [LAUNCHER], RunJob: [LAUNCHER], ListExecutions: [LAUNCHER] })

  const own = await google.cloudRunFor(await identities.resolve(null))
  await own.jobs.getJob({ name: `${PARENT}/jobs/keyless` })
  t.same(emu.callers().GetJob, [PUSHPOOL], 'pushpool\'s own identity, from the metadata server')
})

t.test('a token that cannot be had fails the call before it is sent, as UNKNOWN, which is retried', async t => {
  const warn = console.warn
  console.warn = () => {}
  const refused = new Impersonated({ targetPrincipal: 'nobody@p.iam.gserviceaccount.com', endpoint: emu.httpUrl, targetScopes: ['https://www.googleapis.com/auth/cloud-platform'],
    sourceClient: (await identities.resolve(null)).authClient! })
  console.warn = warn
  const jobs = withBearerToken(new v2.JobsClient({ ...emulatorClientOptions(emu.endpoint), projectId: 'p' }), ['getJob'], refused)
  t.teardown(() => jobs.close())
  emu.resetCalls()
  const error = await jobs.getJob({ name: `${PARENT}/jobs/keyless` }).catch((e: unknown) => e)
  t.match(error, { code: 2, details: /^Getting metadata from plugin failed with error: Could not refresh access token: PERMISSION_DENIED: unable to impersonate/ })
  t.equal(classifyFailure('GetJob', error).kind, 'transient')
  t.equal(emu.calls().GetJob, undefined, 'nothing reached Cloud Run')
})
