// Keyless impersonation: google-auth-library's real Impersonated client pointed at the emulator's IAM
// Credentials API, which checks the delegation chain hop by hop.
import { Impersonated, OAuth2Client } from 'google-auth-library'
import t from 'tap'
import { GoogleIdTokenVerifier } from '../../src/auth/google-id-token.ts'
import { startEmulator } from '../../src/emulator/index.ts'

const PUSHPOOL = 'pushpool@p.iam.gserviceaccount.com'
const RUNNER = 'flow-runner@p.iam.gserviceaccount.com'
const HOP_A = 'hop-a@p.iam.gserviceaccount.com'
const HOP_B = 'hop-b@p.iam.gserviceaccount.com'
const SCOPES = ['https://www.googleapis.com/auth/cloud-platform']
const account = (email: string): string => `projects/-/serviceAccounts/${email}`

const emu = await startEmulator({
  tokenCreators: {
    [RUNNER]: [`serviceAccount:${PUSHPOOL}`, `serviceAccount:${HOP_B}`],
    [HOP_A]: [`serviceAccount:${PUSHPOOL}`],
    [HOP_B]: [`serviceAccount:${HOP_A}`]
  }
})
t.teardown(() => emu.close())

/** pushpool's own identity, as the metadata server would hand it out on Cloud Run. */
function source (principal = PUSHPOOL): OAuth2Client {
  const client = new OAuth2Client()
  client.setCredentials({ access_token: emu.accessToken(principal), expiry_date: Date.now() + 3600_000 })
  return client
}

const warnings: string[] = []

/** An Impersonated client on the emulator's IAM Credentials; the library's console.warn on each construction is kept aside. */
function impersonated (options: { sourceClient?: OAuth2Client, targetPrincipal?: string, delegates?: string[] } = {}): Impersonated {
  const warn = console.warn
  console.warn = (...args: unknown[]) => { warnings.push(args.join(' ')) }
  try {
    return new Impersonated({ sourceClient: source(), targetPrincipal: RUNNER, targetScopes: SCOPES, endpoint: emu.httpUrl, ...options })
  } finally {
    console.warn = warn
  }
}

t.test('Impersonated gets an access token for the target through the emulator, then ID tokens', async t => {
  const client = impersonated()
  const { token } = await client.getAccessToken()
  t.match(token, /^ya29\./)
  t.equal(emu.calls().GenerateAccessToken, 1)
  t.match(warnings[0], /^The `Impersonated` constructor does not validate the credential configuration/,
    'each construction writes a plain-text warning to stderr (a caller with JSON logs must expect it)')
  const idToken = await client.fetchIdToken('https://pushpool.example.run.app')
  t.same(await new GoogleIdTokenVerifier({ certsUrl: emu.certsUrl, audience: 'https://pushpool.example.run.app' }).verify(idToken),
    { email: RUNNER, emailVerified: true })
})

t.test('the issued token is the target\'s own: it can impersonate onward as the target', async t => {
  // RUNNER holds no grant anywhere, so impersonating HOP_A as RUNNER must fail, whereas PUSHPOOL may.
  const asRunner = impersonated({ sourceClient: impersonated(), targetPrincipal: HOP_A })
  await t.rejects(asRunner.getAccessToken(), { message: /^PERMISSION_DENIED: unable to impersonate: Permission 'iam\.serviceAccounts\.getAccessToken' denied/ })
  await t.resolves(impersonated({ targetPrincipal: HOP_A }).getAccessToken())
})

t.test('a delegation chain passes only when every hop holds Token Creator on the next', async t => {
  const full = impersonated({ delegates: [account(HOP_A), account(HOP_B)] })
  t.match((await full.getAccessToken()).token, /^ya29\./, 'pushpool → hop-a → hop-b → runner')
  const skipping = impersonated({ delegates: [account(HOP_B)] })
  await t.rejects(skipping.getAccessToken(), { message: /PERMISSION_DENIED/ }, 'pushpool has no grant on hop-b')
  const reversed = impersonated({ delegates: [account(HOP_B), account(HOP_A)] })
  await t.rejects(reversed.getAccessToken(), { message: /PERMISSION_DENIED/ })
})

t.test('no grant, no token: 403 in Google\'s error shape, for unknown accounts too', async t => {
  const stranger = impersonated({ sourceClient: source('someone@p.iam.gserviceaccount.com') })
  await t.rejects(stranger.getAccessToken(), { message: /PERMISSION_DENIED: unable to impersonate/ })
  const res = await fetch(`${emu.httpUrl}/v1/${account('ghost@p.iam.gserviceaccount.com')}:generateAccessToken`, {
    method: 'POST',
    headers: { authorization: `Bearer ${emu.accessToken(PUSHPOOL)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ scope: SCOPES })
  })
  t.equal(res.status, 403)
  t.same(await res.json(), {
    error: {
      code: 403,
      message: 'Permission \'iam.serviceAccounts.getAccessToken\' denied on resource (or it may not exist).',
      status: 'PERMISSION_DENIED',
      details: [{
        '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
        reason: 'IAM_PERMISSION_DENIED',
        domain: 'iam.googleapis.com',
        metadata: { permission: 'iam.serviceAccounts.getAccessToken' }
      }]
    }
  })
})

t.test('grants can be added while running', async t => {
  const late = 'late@p.iam.gserviceaccount.com'
  await t.rejects(impersonated({ targetPrincipal: late }).getAccessToken())
  emu.grantTokenCreator(late, `serviceAccount:${PUSHPOOL}`)
  await t.resolves(impersonated({ targetPrincipal: late }).getAccessToken())
})

t.test('malformed or unauthenticated requests', async t => {
  const call = async (path: string, body: unknown, token: string | null = emu.accessToken(PUSHPOOL)): Promise<{ status: number, error: { status: string } }> => {
    const res = await fetch(`${emu.httpUrl}/v1/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(body)
    })
    return { status: res.status, ...(await res.json() as { error: { status: string } }) }
  }
  const target = `${account(RUNNER)}:generateAccessToken`
  t.match(await call(target, { scope: SCOPES }, null), { status: 401, error: { status: 'UNAUTHENTICATED' } })
  t.match(await call(target, { scope: SCOPES }, 'ya29.forged'), { status: 401, error: { status: 'UNAUTHENTICATED' } })
  t.match(await call(`projects/p/serviceAccounts/${RUNNER}:generateAccessToken`, { scope: SCOPES }), { status: 400, error: { status: 'INVALID_ARGUMENT' } },
    'the - wildcard is required')
  t.match(await call(target, { scope: [] }), { status: 400 }, 'a scope is required')
  t.match(await call(target, { scope: SCOPES, lifetime: '7200s' }), { status: 400 }, 'beyond an hour needs an organization policy')
  t.match(await call(target, { scope: SCOPES, delegates: [HOP_A] }), { status: 400 }, 'delegates are resource names, not bare emails')
  t.match(await call(`${account(RUNNER)}:generateIdToken`, {}), { status: 400 }, 'an audience is required')
  const withoutEmail = await fetch(`${emu.httpUrl}/v1/${account(RUNNER)}:generateIdToken`, {
    method: 'POST',
    headers: { authorization: `Bearer ${emu.accessToken(PUSHPOOL)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ audience: 'aud' })
  })
  const { token } = await withoutEmail.json() as { token: string }
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<string, unknown>
  t.notOk('email' in claims, 'includeEmail unset: the token names the account by its id only')
  t.match(claims.sub, /^\d{21}$/)
})
