// A throw-away Google service-account key, shaped like the JSON the Cloud console downloads, for
// GCP Credentials blocks in tests and in the code cache's training run. The key is real RSA, so
// code that signs a JWT with it works; token_uri points at a closed loopback port, so nothing can
// ever exchange it for a token.

import { generateKeyPairSync, randomBytes } from 'node:crypto'

// A type alias rather than an interface, so it is assignable to Record<string, unknown>.
export type ServiceAccountKey = {
  type: 'service_account'
  project_id: string
  private_key_id: string
  private_key: string
  client_email: string
  client_id: string
  auth_uri: string
  token_uri: string
  auth_provider_x509_cert_url: string
  client_x509_cert_url: string
  universe_domain: string
}

export function serviceAccountKey (projectId = 'pushpool-test', accountName = 'pushpool-test'): ServiceAccountKey {
  const clientEmail = `${accountName}@${projectId}.iam.gserviceaccount.com`
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  })
  return {
    type: 'service_account',
    project_id: projectId,
    private_key_id: randomBytes(20).toString('hex'),
    private_key: privateKey,
    client_email: clientEmail,
    client_id: String(BigInt(`0x${randomBytes(8).toString('hex')}`)),
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: 'http://127.0.0.1:9/token',
    auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
    client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(clientEmail)}`,
    universe_domain: 'googleapis.com',
  }
}
