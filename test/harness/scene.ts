// A served cloud-run-v2 pool on the real Prefect server, a deployment in it, and a pushpool app
// pointed at Prefect and at an emulator: the stage most dispatch tests play on.
import type { Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { build, webhookHeaders, webhookPayload, adminHeaders, deliverUntilPrefectAnswers } from '../helper.ts'
import type { PrefectFixtures, StateCreate } from './prefect-fixtures.ts'
import type { Emulator } from '../../src/emulator/index.ts'
import { DRIVABLE_STATES, type DispatchState } from '../../src/store/transitions.ts'
import type { Execution } from '../../src/emulator/index.ts'
import type { ServedPoolOptions } from './prefect-fixtures.ts'

export interface SceneOptions {
  env?: Record<string, string>
  jobVariables?: Record<string, unknown>
  logLines?: string[]
  concurrencyLimit?: number
  /** How the pool is made: without a credentials block, with extra variables. */
  pool?: Pick<ServedPoolOptions, 'keyless' | 'variables'>
}

export interface Scene {
  app: FastifyInstance
  pool: string
  deploymentId: string
  /** Creates a flow run of the deployment (Scheduled now, unless `state` says otherwise). */
  flowRun: (state?: StateCreate) => Promise<string>
  webhook: (flowRunId: string, event?: string) => Promise<LightMyRequestResponse>
  reconcile: () => Promise<Record<string, unknown>>
  detail: (dispatchId: string) => Promise<any>
}

export async function scene (t: Test, prefect: PrefectFixtures, peers: { apiUrl: string, authString: string },
  emulator: Emulator, options: SceneOptions = {}): Promise<Scene> {
  const { pool, deploymentId } = await prefect.servedPool('pool', 'proj-test', { ...options.pool, concurrencyLimit: options.concurrencyLimit, jobVariables: options.jobVariables })
  const app = await build(t, {
    logLines: options.logLines,
    env: {
      PREFECT_API_URL: peers.apiUrl,
      PREFECT_API_AUTH_STRING: peers.authString,
      PUSHPOOL_POOLS: pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint,
      PUSHPOOL_LOGGING_ENDPOINT: emulator.httpUrl,
      ...options.env
    }
  })
  return {
    app,
    pool,
    deploymentId,
    flowRun: async state => (await prefect.createFlowRun(deploymentId, state === undefined ? {} : { state })).id,
    webhook: (flowRunId, event) => deliverUntilPrefectAnswers(
      () => app.inject({ method: 'POST', url: '/v1/webhooks/prefect', headers: webhookHeaders(), payload: webhookPayload(flowRunId, event) }),
      async res => ({ status: res.statusCode, code: res.statusCode === 503 ? res.json().code : undefined })),
    reconcile: async () => {
      const res = await app.inject({ method: 'POST', url: '/v1/reconcile', headers: adminHeaders() })
      if (res.statusCode !== 200) throw new Error(`reconcile answered ${res.statusCode}: ${res.body}`)
      return res.json()
    },
    detail: async id => (await app.inject({ method: 'GET', url: `/v1/dispatches/${id}`, headers: adminHeaders() })).json()
  }
}

/** The emulator's executions launched for one flow run (by the PREFECT__FLOW_RUN_ID env var). */
export function executionsOf (emulator: Emulator, flowRunId: string): Execution[] {
  return emulator.executions().filter(e =>
    (e.template?.containers?.[0]?.env ?? []).some(v => v.name === 'PREFECT__FLOW_RUN_ID' && v.value === flowRunId))
}

/** Dispatch states a drive may be moving on from right now (a waiting `deferred` one aside). */
export const ON_ITS_WAY: readonly DispatchState[] = DRIVABLE_STATES.filter(state => state !== 'deferred')

/**
 * A dispatch once it has come to rest (its admin view). On a loaded machine a webhook's drive can
 * outlast the webhook's deadline (the reply says claimed or launching while it goes on) or find
 * Prefect too slow and wait (deferred, retrying): it is redriven, as an operator would, until it
 * has settled, for at most `withinMs`. Not for dispatches a concurrency limit holds back.
 */
export async function settledDispatch (app: FastifyInstance, dispatchId: string, withinMs = 60_000): Promise<any> {
  const read = async (): Promise<any> =>
    (await app.inject({ method: 'GET', url: `/v1/dispatches/${dispatchId}`, headers: adminHeaders() })).json().dispatch
  let dispatch = await read()
  for (const giveUp = Date.now() + withinMs; DRIVABLE_STATES.includes(dispatch?.state) && Date.now() < giveUp;) {
    await sleep(500)
    // Answers 409 while another drive owns it, or once it has moved on: either way it is read again.
    await app.inject({ method: 'POST', url: `/v1/dispatches/${dispatchId}/redrive`, headers: adminHeaders() })
    dispatch = await read()
  }
  return dispatch
}
