// The GCE metadata server's routes a workload's credentials need, on the emulator's HTTP side, as
// Cloud Run serves them to a service (https://cloud.google.com/run/docs/container-contract#metadata-server):
// the attached service account's access token and email, and the project id. google-auth-library's
// Compute client and gcp-metadata reach them when GCE_METADATA_HOST names the emulator's HTTP side.
// Every request must carry `Metadata-Flavor: Google`, and every answer carries it back (gcp-metadata
// refuses an answer without it). Tokens are issued by IamCredentials, so the emulator's other APIs
// take them as the account's.
import type { HttpAnswer, HttpCall, Route } from './http.ts'
import type { IamCredentials } from './iam-credentials.ts'

export interface MetadataServerOptions {
  /** The service account the workload runs as: what `service-accounts/default` stands for. */
  serviceAccount: string
  /** Default: the account's project, from an `…@PROJECT.iam.gserviceaccount.com` email. */
  project?: string
}

const SERVICE = 'metadata.google.internal'
const FLAVOR = { 'metadata-flavor': 'Google' }
const ACCOUNT = '^/computeMetadata/v1/instance/service-accounts/([^/]+)'

export function metadataRoutes (options: MetadataServerOptions, iam: IamCredentials): Route[] {
  const email = options.serviceAccount.toLowerCase()
  const project = options.project ?? /^[^@]+@([a-z][a-z0-9-]*)\.iam\.gserviceaccount\.com$/.exec(email)?.[1]
  /** The account a path names: `default` or its own email, as on GCE; anything else is unknown there. */
  const account = (call: HttpCall, answer: () => HttpAnswer): HttpAnswer => {
    const named = call.params[0].toLowerCase()
    return named === 'default' || named === email ? answer() : text(404, `${call.path} not found`)
  }
  const route = (name: string, path: string, handle: (call: HttpCall) => HttpAnswer): Route => ({
    method: 'GET',
    path: new RegExp(path),
    name,
    service: SERVICE,
    handle: call => call.headers['metadata-flavor'] === 'Google'
      ? handle(call)
      // The metadata server's own words for a request without the header.
      : text(403, 'Missing required header: "Metadata-Flavor": "Google"')
  })
  return [
    route('MetadataAccessToken', `${ACCOUNT}/token$`, call => account(call, () => {
      const { accessToken, expireTime } = iam.accessToken(email)
      const expiresIn = Math.max(0, Math.floor((Date.parse(expireTime) - Date.now()) / 1000))
      return { headers: FLAVOR, body: { access_token: accessToken, expires_in: expiresIn, token_type: 'Bearer' } }
    })),
    route('MetadataEmail', `${ACCOUNT}/email$`, call => account(call, () => text(200, email))),
    route('MetadataProjectId', '^/computeMetadata/v1/project/project-id$', call =>
      project === undefined ? text(404, `${call.path} not found`) : text(200, project))
  ]
}

function text (status: number, body: string): HttpAnswer {
  return { status, headers: FLAVOR, body }
}
