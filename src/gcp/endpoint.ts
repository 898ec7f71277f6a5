// Client options that aim a Google client library at a plaintext gRPC endpoint (`host:port`) —
// pushpool's own emulator in dev, demo and tests. Insecure channel credentials also stop the
// client from asking its auth client for per-call tokens, so no Google host is ever contacted.
import { credentials, type ChannelCredentials } from '@grpc/grpc-js'

export interface PlaintextEndpointOptions {
  apiEndpoint: string
  port: number
  sslCreds: ChannelCredentials
  /** Without it the client probes for ADC to learn the universe domain, which reaches for the metadata server. */
  universeDomain: string
}

export function plaintextEndpointOptions (endpoint: string): PlaintextEndpointOptions {
  const separator = endpoint.lastIndexOf(':')
  const host = endpoint.slice(0, separator).replace(/^\[(.*)\]$/, '$1')
  const port = Number(endpoint.slice(separator + 1))
  if (separator === -1 || host === '' || !Number.isInteger(port)) {
    throw new Error(`Invalid endpoint '${endpoint}': expected host:port`)
  }
  return { apiEndpoint: host, port, sslCreds: credentials.createInsecure(), universeDomain: 'googleapis.com' }
}
