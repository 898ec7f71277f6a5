// Client options that aim a Google client library at a plaintext gRPC endpoint (`host:port`) —
// pushpool's own emulator in dev, demo and tests. Insecure channel credentials also stop the
// client from asking its auth client for per-call tokens, so no Google host is ever contacted.
// @grpc/grpc-js is imported only when such options are made: it costs ~50 ms and ~15 MB to load,
// and the server needs it only once its first launch builds the (already lazy) Google clients.
import type { ChannelCredentials } from '@grpc/grpc-js'

export interface PlaintextEndpointOptions {
  apiEndpoint: string
  port: number
  sslCreds: ChannelCredentials
  /** Without it the client probes for ADC to learn the universe domain, which reaches for the metadata server. */
  universeDomain: string
}

/** The options for `endpoint`, with the insecure channel credentials made by the caller's grpc-js. */
export function plaintextEndpointOptions (endpoint: string, sslCreds: ChannelCredentials): PlaintextEndpointOptions {
  const separator = endpoint.lastIndexOf(':')
  const host = endpoint.slice(0, separator).replace(/^\[(.*)\]$/, '$1')
  const port = Number(endpoint.slice(separator + 1))
  if (separator === -1 || host === '' || !Number.isInteger(port)) {
    throw new Error(`Invalid endpoint '${endpoint}': expected host:port`)
  }
  return { apiEndpoint: host, port, sslCreds, universeDomain: 'googleapis.com' }
}

/** The options for `endpoint`, loading grpc-js on first use. */
export async function loadPlaintextEndpointOptions (endpoint: string): Promise<PlaintextEndpointOptions> {
  const { credentials } = await import('@grpc/grpc-js')
  return plaintextEndpointOptions(endpoint, credentials.createInsecure())
}
