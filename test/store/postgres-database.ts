// A fresh PostgreSQL database per test, on the server that PUSHPOOL_TEST_POSTGRES_URL names (`bash
// scripts/postgres.sh` starts one and prints it), so tests never see each other's rows. Dropped in
// the test's teardown.
import { randomBytes } from 'node:crypto'
import pg from 'pg'

export const POSTGRES_URL_ENV = 'PUSHPOOL_TEST_POSTGRES_URL'

/** The server's URL, or undefined when this environment has none. */
export function postgresTestUrl (): string | undefined {
  const url = process.env[POSTGRES_URL_ENV]
  return url === undefined || url === '' ? undefined : url
}

/** Why postgres cases are not registered here, as a tap comment. */
export const NO_POSTGRES = `postgres: not tested, ${POSTGRES_URL_ENV} is not set (\`bash scripts/postgres.sh\` prints one)`

/** Where the database's drop is registered: a tap test, or the bench's own list. */
export interface Teardowns {
  teardown (fn: () => unknown): void
}

/** Creates an empty database and returns its URL (the server URL with another database name). */
export async function freshDatabase (t: Teardowns, serverUrl: string): Promise<string> {
  const name = `pushpool_test_${randomBytes(6).toString('hex')}`
  await admin(serverUrl, `CREATE DATABASE ${name}`)
  // Registered before the caller's own teardowns, so it runs after them (tap runs them last-in,
  // first-out). FORCE ends any connection a failed test left open.
  t.teardown(() => admin(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

async function admin (serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}
