// Google client construction, loaded lazily: @google-cloud/run costs ~200 ms to import and its
// first gRPC client ~50 ms to build (with grpc-definitions.ts's lean definitions), so neither happens
// at start-up (cold start), only for the first launch or when a cold instance's first request warms
// them up (server.ts).
// One pair of Cloud Run clients per GCP identity, reused for every launch under it.
// Each client is imported from its own file, not the package index: the index also loads every
// other client and the packages' generated protobufjs classes (1.2 MB of code for Cloud Run,
// 0.8 MB for Secret Manager), which the clients do not use (they load protos.json). That is ~5 MB
// of memory for the life of the instance. The paths are the packages' build layout, not their
// public API: the dispatch and emulator tests load them, so an upgrade that moves them fails there.
import type { JobsClient, ExecutionsClient } from '@google-cloud/run'
import type { SecretManagerServiceClient } from '@google-cloud/secret-manager'
import type { GcpIdentity } from './credentials.ts'
import type { AuthClient } from 'google-auth-library'
import { loadPlaintextEndpointOptions } from './endpoint.ts'
import { withBearerToken } from './plaintext-auth.ts'
import { rpcStatusOf, RpcStatus } from './rpc-status.ts'
import { settleLongrunningDecoders } from './lro-decoders.ts'
import { loadLeanGax } from './grpc-definitions.ts'

interface CloudRunClientClasses {
  JobsClient: typeof JobsClient
  ExecutionsClient: typeof ExecutionsClient
}

let cloudRunClasses: Promise<CloudRunClientClasses> | null = null

/** The Cloud Run client classes, imported once per process. */
function loadCloudRunClasses (): Promise<CloudRunClientClasses> {
  cloudRunClasses ??= Promise.all([
    import('@google-cloud/run/build/src/v2/jobs_client.js'),
    import('@google-cloud/run/build/src/v2/executions_client.js'),
    loadLeanGax()
  ]).then(([{ JobsClient }, { ExecutionsClient }]) => ({ JobsClient, ExecutionsClient }))
  return cloudRunClasses
}

/**
 * Loads the Cloud Run client and builds a pair of clients that is thrown away: google-gax keeps
 * the gRPC definitions it parsed from the protos for every client built after, so what the first
 * launch still pays is a few ms per identity instead of the whole load. Nothing is sent. The pair
 * is given an auth client of its own: without one, closing it has google-auth-library look for
 * Application Default Credentials, probing the GCE metadata server from wherever pushpool runs.
 */
export async function warmUpCloudRunClients (): Promise<void> {
  const [{ JobsClient, ExecutionsClient }, { OAuth2Client }] = await Promise.all([loadCloudRunClasses(), import('google-auth-library')])
  const authClient = new OAuth2Client()
  await Promise.all([new JobsClient({ authClient }).close(), new ExecutionsClient({ authClient }).close()])
}

export interface CloudRunClients {
  jobs: JobsClient
  executions: ExecutionsClient
  /** The identity's own client, for Google's REST APIs (Cloud Logging); null for the emulator's. */
  authClient: AuthClient | null
}

export interface GoogleClientsOptions {
  cloudRunEndpoint: string | null
  secretManagerEndpoint: string | null
  /** Called once per Cloud Run RPC with its method name and gRPC status (0 = OK), for metrics. */
  onCall?: (method: string, code: number) => void
}

// The Cloud Run RPCs pushpool makes; each is counted by metrics.
const COUNTED = ['createJob', 'getJob', 'runJob', 'deleteJob', 'getExecution', 'cancelExecution', 'listExecutionsAsync'] as const

export class GoogleClients {
  private readonly options: GoogleClientsOptions
  private readonly cloudRun = new Map<string, Promise<CloudRunClients>>()
  private secretManager: Promise<SecretManagerServiceClient> | null = null

  constructor (options: GoogleClientsOptions) {
    this.options = options
  }

  cloudRunFor (identity: GcpIdentity): Promise<CloudRunClients> {
    let clients = this.cloudRun.get(identity.id)
    if (clients === undefined) {
      clients = this.makeCloudRun(identity)
      this.cloudRun.set(identity.id, clients)
    }
    return clients
  }

  /** Reads a secret version's payload as UTF-8, with pushpool's own identity (ADC or the emulator). */
  async readSecret (name: string): Promise<string> {
    this.secretManager ??= this.makeSecretManager()
    const client = await this.secretManager
    const version = /\/versions\/[^/]+$/.test(name) ? name : `${name}/versions/latest`
    const [response] = await client.accessSecretVersion({ name: version })
    const data = response.payload?.data
    if (data === undefined || data === null) throw new Error(`Secret ${version} has no payload`)
    return typeof data === 'string' ? data : Buffer.from(data).toString('utf8')
  }

  async close (): Promise<void> {
    const all = [...this.cloudRun.values()]
    this.cloudRun.clear()
    for (const pending of all) {
      const clients = await pending.catch(() => null)
      if (clients !== null) await Promise.all([clients.jobs.close(), clients.executions.close()])
    }
    if (this.secretManager !== null) await (await this.secretManager).close()
  }

  private async makeCloudRun (identity: GcpIdentity): Promise<CloudRunClients> {
    const { JobsClient, ExecutionsClient } = await loadCloudRunClasses()
    const endpoint = this.options.cloudRunEndpoint
    const options = {
      projectId: identity.project,
      ...(identity.authClient !== null ? { authClient: identity.authClient } : {}),
      ...(endpoint !== null ? await loadPlaintextEndpointOptions(endpoint) : {})
    }
    const jobs = new JobsClient(options)
    const executions = new ExecutionsClient(options)
    settleLongrunningDecoders(jobs)
    settleLongrunningDecoders(executions)
    if (endpoint !== null && identity.authClient !== null) {
      // A plaintext channel carries no call credentials: the identity's token is added to each call, as TLS would.
      withBearerToken(jobs, COUNTED, identity.authClient)
      withBearerToken(executions, COUNTED, identity.authClient)
    }
    return { jobs: this.counted(jobs), executions: this.counted(executions), authClient: identity.authClient }
  }

  /** Wraps the RPC methods pushpool uses so each call reports its method and status. */
  private counted<T extends object>(client: T): T {
    const onCall = this.options.onCall
    if (onCall === undefined) return client
    const target = client as Record<string, unknown>
    for (const name of COUNTED) {
      const method = target[name]
      if (typeof method !== 'function') continue
      const rpc = name.replace(/Async$/, '').replace(/^./, c => c.toUpperCase())
      target[name] = (...args: unknown[]) => {
        let result: unknown
        try {
          result = method.apply(client, args)
        } catch (err) {
          onCall(rpc, rpcStatusOf(err) ?? RpcStatus.UNKNOWN)
          throw err
        }
        if (result instanceof Promise) {
          return result.then(value => { onCall(rpc, RpcStatus.OK); return value }, err => { onCall(rpc, rpcStatusOf(err) ?? RpcStatus.UNKNOWN); throw err })
        }
        // An async iterator (paged list): counted when it is started.
        onCall(rpc, RpcStatus.OK)
        return result
      }
    }
    return client
  }

  private async makeSecretManager (): Promise<SecretManagerServiceClient> {
    const [{ SecretManagerServiceClient }] = await Promise.all([
      import('@google-cloud/secret-manager/build/src/v1/secret_manager_service_client.js'),
      loadLeanGax()
    ])
    const endpoint = this.options.secretManagerEndpoint
    return new SecretManagerServiceClient(endpoint !== null ? { ...await loadPlaintextEndpointOptions(endpoint) } : {})
  }
}

