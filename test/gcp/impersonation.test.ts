// IdentityResolver's impersonation against the emulator's metadata server and IAM Credentials, with
// the real google-auth-library; and the decision of what a failed token request means.
import t from 'tap'
import { Compute } from 'google-auth-library'
import { CredentialsError, RetryLater } from '../../src/failures.ts'
import { IdentityResolver, type IdentityResolverOptions } from '../../src/gcp/credentials.ts'
import { explainFailure } from '../../src/gcp/impersonation.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { serviceAccountKey } from '../../src/devstack/service-account-key.ts'

const PUSHPOOL = 'pushpool@p.iam.gserviceaccount.com'
const LAUNCHER = 'launcher@p.iam.gserviceaccount.com'
const LATE = 'late@p.iam.gserviceaccount.com'

const emu = await startEmulator({ metadataServer: { serviceAccount: PUSHPOOL }, tokenCreators: { [LAUNCHER]: [`serviceAccount:${PUSHPOOL}`] } })
t.teardown(() => emu.close())
process.env.GCE_METADATA_HOST = emu.httpEndpoint

const resolver = (options: Partial<IdentityResolverOptions> = {}): IdentityResolver => new IdentityResolver({
  credentialsSecret: null,
  fallbackProject: 'p',
  emulated: true,
  iamCredentialsEndpoint: emu.httpUrl,
  readSecret: async () => { throw new Error('no secret in these tests') },
  ...options
})

t.test('an impersonated identity: its own id, its source recorded, one client and one token for many resolves', async t => {
  emu.resetCalls()
  const identities = resolver()
  const own = await identities.resolve(null)
  t.ok(own.authClient instanceof Compute, 'pushpool\'s own identity is the metadata server\'s, as on Cloud Run')
  t.equal(own.impersonated, null)
  const launcher = await identities.resolve(null, LAUNCHER)
  t.not(launcher.id, own.id, 'a Cloud Run client of its own')
  t.match(launcher, { source: 'adc', impersonated: LAUNCHER, project: 'p' })
  t.equal(await identities.resolve(null, LAUNCHER), launcher, 'cached')
  t.equal((await identities.resolve({ project: 'other' }, LAUNCHER)).project, 'other', 'the project is the source\'s, per project')
  t.equal(emu.calls().GenerateAccessToken, 2, 'one token per identity, however often it is resolved')
})

t.test('a grant that was missing is picked up by the next resolve, without a restart', async t => {
  const identities = resolver()
  const refused = await identities.resolve(null, LATE).catch((e: unknown) => e)
  t.ok(refused instanceof CredentialsError)
  t.match((refused as Error).message, `grant roles/iam.serviceAccountTokenCreator on ${LATE} to ${PUSHPOOL}`)
  emu.grantTokenCreator(LATE, `serviceAccount:${PUSHPOOL}`)
  t.equal((await identities.resolve(null, LATE)).impersonated, LATE)
})

t.test('what emulated mode cannot do is a CredentialsError naming the setting', async t => {
  await t.rejects(resolver({ iamCredentialsEndpoint: null }).resolve(null, LAUNCHER),
    { name: 'CredentialsError', message: /needs PUSHPOOL_IAM_CREDENTIALS_ENDPOINT/ })
  const withKey = resolver()
  const keyBlock = { service_account_info: serviceAccountKey('p'), project: 'p' }
  t.equal((await withKey.resolve(keyBlock)).authClient, null, 'a key gives no auth client: its tokens would come from Google')
  await t.rejects(withKey.resolve(keyBlock, LAUNCHER), { name: 'CredentialsError', message: /cannot start from a service-account key/ })

  const host = process.env.GCE_METADATA_HOST
  delete process.env.GCE_METADATA_HOST
  t.teardown(() => { process.env.GCE_METADATA_HOST = host })
  const withoutMetadata = resolver()
  t.equal((await withoutMetadata.resolve(null)).authClient, null, 'no metadata server: no identity, as before')
  await t.rejects(withoutMetadata.resolve(null, LAUNCHER), { name: 'CredentialsError', message: /set GCE_METADATA_HOST/ })
})

t.test('a refusal is permanent and names the fix; anything else may pass and is retried', async t => {
  const failure = (status: number | undefined, message = 'PERMISSION_DENIED: unable to impersonate: denied') =>
    Object.assign(new Error(message), status === undefined ? {} : { status, config: { headers: { authorization: 'Bearer ya29.secret' } } })
  for (const status of [400, 403, 404]) {
    const error = explainFailure(failure(status), 'pushpool could not impersonate x', 'grant y')
    t.ok(error instanceof CredentialsError, `${status}`)
    t.equal(error.message, 'pushpool could not impersonate x: PERMISSION_DENIED: unable to impersonate: denied; grant y')
    t.equal(error.cause, undefined, 'the failed request, which holds a token, is not kept')
  }
  for (const status of [401, 429, 500, 503, undefined]) {
    t.ok(explainFailure(failure(status, 'unavailable'), 'what', 'fix') instanceof RetryLater, String(status))
  }
  t.ok(explainFailure(Object.assign(new Error('x'), { response: { status: 403 } }), 'what', null) instanceof CredentialsError,
    'the status of a response is read too')
  t.equal(explainFailure(new RetryLater('IAM Credentials did not answer within 10 s'), 'what', 'fix').message,
    'what: IAM Credentials did not answer within 10 s', 'a wait that ran out is retried, with what was waited for')
})
