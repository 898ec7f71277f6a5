// build(t): a pushpool app on a fresh SQLite file, exercised through inject(). Peers (Prefect,
// the Cloud Run emulator) are passed in as env, exactly as production would configure them.
import type { Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildServer } from '../src/server.ts'
import { loadConfig } from '../src/config.ts'

export const WEBHOOK_SECRET = 'test-webhook-secret-0123456789'
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcd'

/** The environment of a pushpool serving `pool` against the test's Prefect server and emulator, with the test's secrets. */
export function servingEnv (o: { storeUrl: string, prefect: { apiUrl: string, authString: string }, pool: string, cloudRunEndpoint: string }): Record<string, string> {
  return {
    PUSHPOOL_STORE_URL: o.storeUrl,
    PUSHPOOL_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    PUSHPOOL_ADMIN_TOKENS: ADMIN_TOKEN,
    PREFECT_API_URL: o.prefect.apiUrl,
    PREFECT_API_AUTH_STRING: o.prefect.authString,
    PUSHPOOL_POOLS: o.pool,
    PUSHPOOL_CLOUD_RUN_ENDPOINT: o.cloudRunEndpoint
  }
}

export interface BuildOptions {
  env?: Record<string, string>
  /** Collect the app's log lines (JSON) instead of discarding them. */
  logLines?: string[]
}

export async function build (t: Test, options: BuildOptions = {}): Promise<FastifyInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-test-'))
  const config = loadConfig({
    PUSHPOOL_STORE_URL: `sqlite:${join(dir, 'pushpool.db')}`,
    PUSHPOOL_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    PUSHPOOL_ADMIN_TOKENS: ADMIN_TOKEN,
    PREFECT_API_URL: 'http://127.0.0.1:9/api',
    LOG_LEVEL: options.logLines === undefined ? 'silent' : 'debug',
    // The longest wait the service allows before a webhook answers: on a machine busy with other
    // work a launch can take seconds, and the tests read the state the webhook answered with.
    PUSHPOOL_WEBHOOK_DEADLINE_MS: '9500',
    ...options.env
  })
  const app = await buildServer(config, {
    logStream: options.logLines === undefined ? undefined : { write: (line: string) => { options.logLines?.push(line) } },
    // The service skips this check to start faster; the tests make it, so a bad schema still fails.
    validateSchemas: true
  })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return app
}

export const webhookHeaders = (secret = WEBHOOK_SECRET): Record<string, string> => ({
  authorization: `Bearer ${secret}`,
  'content-type': 'application/json'
})

export const adminHeaders = (token = ADMIN_TOKEN): Record<string, string> => ({ authorization: `Bearer ${token}` })

export const webhookPayload = (flowRunId: string, event = 'prefect.flow-run.Scheduled'): string => JSON.stringify({
  event_id: '00000000-0000-4000-8000-000000000000',
  event,
  occurred: new Date().toISOString(),
  resource_id: `prefect.flow-run.${flowRunId}`
})

/** How long a test delivers a webhook again while pushpool finds Prefect too slow to read the run. */
const REDELIVER_FOR_MS = 60_000

/**
 * A webhook delivery, made again while pushpool answers 503 PREFECT_UNAVAILABLE: on a loaded
 * machine the test's Prefect can be slower than pushpool's deadline for reading the run, and
 * that answer records nothing (in production the run is then reconcile's to discover). Tests
 * whose subject is not that path deliver until the read succeeds.
 */
export async function deliverUntilPrefectAnswers<R> (deliver: () => Promise<R>, reply: (r: R) => Promise<{ status: number, code?: unknown }>): Promise<R> {
  const giveUp = Date.now() + REDELIVER_FOR_MS
  for (;;) {
    const response = await deliver()
    const { status, code } = await reply(response)
    if (status !== 503 || code !== 'PREFECT_UNAVAILABLE' || Date.now() > giveUp) return response
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
}
