// How run-with-peers.ts hands its Prefect server and venv to the test processes it runs, and the
// venv lookup that follows from it. Free of tap, so the runner and benchmark scripts can load it.

import { randomBytes } from 'node:crypto'
import { ensurePrefectVenv, venvPaths } from '../../src/devstack/venv.ts'
import type { PrefectVenv } from '../../src/devstack/venv.ts'

export const TEST_ENV = {
  apiUrl: 'PUSHPOOL_TEST_PREFECT_API_URL',
  authString: 'PUSHPOOL_TEST_PREFECT_AUTH_STRING',
  venv: 'PUSHPOOL_TEST_VENV',
} as const

/** A fresh Basic auth `user:password` for a test server. */
export function newTestAuthString (): string {
  return `pushpool-test:${randomBytes(16).toString('hex')}`
}

let venv: Promise<PrefectVenv> | undefined

/** The virtualenv with the prefect CLI: the runner's, else one checked (or built) by this process. */
export function testVenv (): Promise<PrefectVenv> {
  const dir = process.env[TEST_ENV.venv]
  venv ??= dir ? Promise.resolve(venvPaths(dir)) : ensurePrefectVenv()
  return venv
}
