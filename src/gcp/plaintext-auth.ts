// A Google client on a plaintext channel (the emulator) sends no call credentials: google-gax uses
// the channel credentials it is given as they are, and gRPC cannot add call credentials to an
// insecure channel. So that the emulator still learns who calls (and records it as Cloud Run does,
// as `creator`), each call gets the identity's request headers as call metadata (google-gax's
// `otherArgs.headers`), which is what the TLS channel's call credentials send in production.
import type { AuthClient } from 'google-auth-library'
import { RpcStatus } from './rpc-status.ts'

interface CallOptions {
  otherArgs?: { headers?: Record<string, unknown>, [key: string]: unknown }
  [key: string]: unknown
}

type Method = (request: unknown, options?: CallOptions, ...rest: unknown[]) => unknown

/** Replaces `methods` of `client` (promise RPCs, and `…Async` paged iterators) with ones that carry `auth`'s headers. */
export function withBearerToken<T extends object> (client: T, methods: readonly string[], auth: AuthClient): T {
  const target = client as Record<string, unknown>
  for (const name of methods) {
    const method = target[name] as Method | undefined
    if (typeof method !== 'function') continue
    const authorized = async (options: CallOptions | undefined): Promise<CallOptions> => {
      const headers = await requestHeaders(auth)
      return { ...options, otherArgs: { ...options?.otherArgs, headers: { ...options?.otherArgs?.headers, ...headers } } }
    }
    target[name] = name.endsWith('Async')
      ? (request: unknown, options?: CallOptions) => (async function * () {
          yield * method.call(client, request, await authorized(options)) as AsyncIterable<unknown>
        })()
      : async (request: unknown, options?: CallOptions, ...rest: unknown[]) => await method.call(client, request, await authorized(options), ...rest)
  }
  return client
}

/** The headers, or the failure gRPC reports when call credentials fail (grpc-js load-balancing-call.js): UNKNOWN, with the reason. */
async function requestHeaders (auth: AuthClient): Promise<Record<string, string>> {
  try {
    return Object.fromEntries(await auth.getRequestHeaders())
  } catch (err) {
    const details = `Getting metadata from plugin failed with error: ${err instanceof Error ? err.message : String(err)}`
    throw Object.assign(new Error(`${RpcStatus.UNKNOWN} UNKNOWN: ${details}`), { code: RpcStatus.UNKNOWN, details })
  }
}
