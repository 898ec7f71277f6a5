// The Prefect server a test talks to. Under `npm test` the runner (run-with-peers.ts) has started
// one server for the whole run and passes it down in the environment; a test file run on its own
// starts a private server once per process and stops it when tap finishes.

import t from 'tap'
import { startPrefectServer } from '../../src/devstack/prefect-server.ts'
import { newTestAuthString, TEST_ENV, testVenv } from './test-env.ts'

export interface TestPrefectServer {
  /** e.g. `http://127.0.0.1:PORT/api` */
  apiUrl: string
  /** Basic auth `user:password`; the server rejects requests without it. */
  authString: string
}

let server: Promise<TestPrefectServer> | undefined

export function prefectServer (): Promise<TestPrefectServer> {
  server ??= sharedOrPrivateServer()
  return server
}

async function sharedOrPrivateServer (): Promise<TestPrefectServer> {
  const apiUrl = process.env[TEST_ENV.apiUrl]
  const authString = process.env[TEST_ENV.authString]
  if (apiUrl && authString) return { apiUrl, authString }

  const privateAuthString = newTestAuthString()
  const started = await startPrefectServer({ venv: await testVenv(), authString: privateAuthString })
  // Stopped when tap has finished this file. A process that dies before then (crash, tap timeout,
  // SIGKILL) closes the pipe the server's guard process watches, and the guard stops the server.
  t.teardown(() => started.stop())
  return { apiUrl: started.apiUrl, authString: privateAuthString }
}
