// The metadata server's credential routes, reached by google-auth-library's real Compute client
// through GCE_METADATA_HOST, and who made a Cloud Run call: the bearer token's principal recorded as
// `creator` and `lastModifier`, as Cloud Run records them.
import { Compute, gcpMetadata, Impersonated } from 'google-auth-library'
import t from 'tap'
import { createJob, errorCode, PARENT, rig } from './helpers.ts'

const WORKLOAD = 'pushpool@p.iam.gserviceaccount.com'
const LAUNCHER = 'launcher@p.iam.gserviceaccount.com'
const SCOPES = ['https://www.googleapis.com/auth/cloud-platform']

const r = await rig(t, { metadataServer: { serviceAccount: WORKLOAD }, tokenCreators: { [LAUNCHER]: [`serviceAccount:${WORKLOAD}`] } })
// gcp-metadata reads the variable on every request; this test file runs in its own process.
process.env.GCE_METADATA_HOST = r.emu.httpEndpoint

/** Call options carrying a bearer token: on a plaintext channel the client attaches none itself. */
const as = (token: string) => ({ otherArgs: { headers: { authorization: `Bearer ${token}` } } })
const job = { template: { template: { containers: [{ image: 'us-docker.pkg.dev/p/r/img:1' }] } } }

t.test('Compute gets the workload\'s token, email and project from the emulator\'s metadata routes', async t => {
  const compute = new Compute({ scopes: SCOPES })
  const { token } = await compute.getAccessToken()
  t.match(token, /^ya29\.emulator-/)
  t.ok((compute.credentials.expiry_date ?? 0) > Date.now() + 3000_000, 'expires_in became an expiry about an hour ahead')
  t.equal(await gcpMetadata.instance('service-accounts/default/email'), WORKLOAD)
  t.equal(await gcpMetadata.project('project-id'), 'p', 'the project of an …@p.iam.gserviceaccount.com account')
  await compute.getAccessToken()
  t.equal(r.emu.calls().MetadataAccessToken, 1, 'the token is cached by the client until it expires')
})

t.test('the metadata routes want Metadata-Flavor: Google and answer with it', async t => {
  const url = `${r.emu.httpUrl}/computeMetadata/v1/instance/service-accounts/default/email`
  const without = await fetch(url)
  t.equal(without.status, 403)
  t.match(await without.text(), /Metadata-Flavor/)
  const withHeader = await fetch(url, { headers: { 'Metadata-Flavor': 'Google' } })
  t.equal(withHeader.headers.get('metadata-flavor'), 'Google')
  t.equal(await withHeader.text(), WORKLOAD)
  const byEmail = await fetch(`${r.emu.httpUrl}/computeMetadata/v1/instance/service-accounts/${WORKLOAD}/email`, { headers: { 'Metadata-Flavor': 'Google' } })
  t.equal(byEmail.status, 200, 'the account is also reachable by its email')
  const other = await fetch(`${r.emu.httpUrl}/computeMetadata/v1/instance/service-accounts/other@p.iam.gserviceaccount.com/token`, { headers: { 'Metadata-Flavor': 'Google' } })
  t.equal(other.status, 404, 'an account not attached to the workload')
})

t.test('a Cloud Run call made with a token records its principal as creator and lastModifier', async t => {
  const compute = new Compute({ scopes: SCOPES })
  const { token } = await compute.getAccessToken()
  await r.jobs.createJob({ parent: PARENT, jobId: 'made-by-workload', job }, as(token as string))
  const name = `${PARENT}/jobs/made-by-workload`
  const [created] = await r.jobs.getJob({ name })
  t.equal(created.creator, WORKLOAD)
  t.equal(created.lastModifier, WORKLOAD)

  const launcher = await impersonate(compute)
  const launcherToken = (await launcher.getAccessToken()).token as string
  await r.jobs.updateJob({ job: { ...job, name } }, as(launcherToken))
  const [updated] = await r.jobs.getJob({ name })
  t.equal(updated.creator, WORKLOAD, 'the creator stays')
  t.equal(updated.lastModifier, LAUNCHER, 'the last modifier is whoever updated it')

  const [operation] = await r.jobs.runJob({ name }, as(launcherToken))
  const execution = (operation.metadata as { name: string }).name
  t.equal(r.emu.execution(execution)?.creator, LAUNCHER, 'an execution\'s creator is whoever ran the job')
  const [read] = await r.executions.getExecution({ name: execution })
  t.equal(read.creator, LAUNCHER, 'and the client reads it back')
  t.same(r.emu.callers().RunJob?.at(-1), LAUNCHER, 'callers() names who made each call')
})

t.test('a call without a token leaves creator empty; a token the emulator never issued is refused', async t => {
  const name = await createJob(r, 'anonymous')
  t.equal(r.emu.jobs().find(j => j.name === name)?.creator, undefined)
  t.equal(r.emu.callers().CreateJob?.at(-1), '', 'no caller')
  const error = await r.jobs.getJob({ name }, as('ya29.forged')).catch((e: unknown) => e)
  t.equal(errorCode(error), 16, 'UNAUTHENTICATED')
  t.match((error as Error).message, /invalid authentication credentials/)
})

t.test('without metadataServer the routes are not served', async t => {
  const bare = await rig(t)
  const res = await fetch(`${bare.emu.httpUrl}/computeMetadata/v1/instance/service-accounts/default/token`, { headers: { 'Metadata-Flavor': 'Google' } })
  t.equal(res.status, 404)
})

/** An Impersonated client on the emulator's IAM Credentials, its construction warning kept off the test's output. */
async function impersonate (source: Compute): Promise<Impersonated> {
  const warn = console.warn
  console.warn = () => {}
  try {
    return new Impersonated({ sourceClient: source, targetPrincipal: LAUNCHER, targetScopes: SCOPES, endpoint: r.emu.httpUrl })
  } finally {
    console.warn = warn
  }
}
