// Timers on Cloud Tasks: one named HTTP task per timer in the deployment's queue, delivered at its
// time to POST /v1/timers/fire with an OIDC token minted for the invoker service account, which the
// route verifies as it verifies Cloud Scheduler's. The name is the timer's hash, so a second arming
// (another instance, another reconcile pass) gets ALREADY_EXISTS, which is success. The queue's own
// retry policy redelivers a firing that failed. pushpool's own identity (ADC) calls Cloud Tasks.
import type { CloudTasksClient } from '@google-cloud/tasks'
import { loadPlaintextEndpointOptions } from '../gcp/endpoint.ts'
import { loadLeanGax } from '../gcp/grpc-definitions.ts'
import { RpcStatus, rpcStatusOf } from '../gcp/rpc-status.ts'
import { timerName, type Timer, type Timers } from './timers.ts'

export interface CloudTasksTimersOptions {
  /** projects/<p>/locations/<l>/queues/<q> */
  queue: string
  /** Where a task delivers: pushpool's own URL, the timer route's. */
  url: string
  /** The audience of the task's OIDC token: pushpool's URL. */
  audience: string
  /** The service account the token is minted for. */
  invoker: string
  /** host:port of a plaintext gRPC emulator, or null for Google. */
  endpoint: string | null
}

/** One firing's delivery may take this long (Cloud Tasks' dispatch_deadline). */
const DELIVERY_DEADLINE_SECONDS = 30
const CALL = { timeout: 10_000 }

export class CloudTasksTimers implements Timers {
  readonly backend = 'cloud-tasks' as const
  private readonly options: CloudTasksTimersOptions
  private client: Promise<CloudTasksClient> | null = null

  constructor (options: CloudTasksTimersOptions) {
    this.options = options
  }

  async arm (timer: Timer): Promise<void> {
    const { queue, url, audience, invoker } = this.options
    const at = timer.fireAt.getTime()
    const task = {
      name: `${queue}/tasks/${timerName(timer)}`,
      scheduleTime: { seconds: Math.floor(at / 1000), nanos: (at % 1000) * 1e6 },
      dispatchDeadline: { seconds: DELIVERY_DEADLINE_SECONDS },
      httpRequest: {
        url,
        httpMethod: 'POST' as const,
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ dispatch_id: timer.dispatchId })),
        oidcToken: { serviceAccountEmail: invoker, audience }
      }
    }
    try {
      await (await this.tasks()).createTask({ parent: queue, task }, CALL)
    } catch (err) {
      // The same timer armed already, by this instance or another: that is the point of the name.
      if (rpcStatusOf(err) !== RpcStatus.ALREADY_EXISTS) throw err
    }
  }

  async disarm (timer: Timer): Promise<void> {
    try {
      await (await this.tasks()).deleteTask({ name: `${this.options.queue}/tasks/${timerName(timer)}` }, CALL)
    } catch (err) {
      // Fired, deleted or never armed: nothing left to remove.
      if (rpcStatusOf(err) !== RpcStatus.NOT_FOUND) throw err
    }
  }

  async close (): Promise<void> {
    if (this.client !== null) await (await this.client).close()
  }

  /** Loaded on first use: the client is not needed to start, and costs a cold start to import. */
  private tasks (): Promise<CloudTasksClient> {
    this.client ??= (async () => {
      const [{ CloudTasksClient }] = await Promise.all([import('@google-cloud/tasks'), loadLeanGax()])
      const endpoint = this.options.endpoint
      return new CloudTasksClient(endpoint !== null ? { ...await loadPlaintextEndpointOptions(endpoint) } : {})
    })()
    this.client.catch(() => { this.client = null })
    return this.client
  }
}
