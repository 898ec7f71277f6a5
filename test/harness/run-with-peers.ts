// Usage: node test/harness/run-with-peers.ts -- <command> [args...]     (npm test: `-- tap`)
//
// Starts the services the tests talk to — PostgreSQL as .ci/run does (postgres-server.ts), and one
// Prefect server for the whole run, instead of one per test file, on a database of its own there —
// runs the command with their coordinates in its environment, stops what it started, and exits
// with the command's status.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { constants } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startPrefectServer } from '../../src/devstack/prefect-server.ts'
import { ensurePrefectVenv } from '../../src/devstack/venv.ts'
import { freshDatabase, POSTGRES_URL_ENV } from '../store/postgres-database.ts'
import { provideTestPostgres, type TestPostgres } from './postgres-server.ts'
import { newTestAuthString, TEST_ENV } from './test-env.ts'

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

const separator = process.argv.indexOf('--')
const [command, ...args] = separator === -1 ? [] : process.argv.slice(separator + 1)
if (!command) {
  process.stderr.write('usage: node test/harness/run-with-peers.ts -- <command> [args...]\n')
  process.exit(2)
}

const say = (line: string): void => { process.stderr.write(`[run-with-peers] ${line}\n`) }

interface PrefectDatabase {
  /** Prefect's settings for it; none for its default (SQLite in PREFECT_HOME). */
  env: Record<string, string>
  describe: string
  drop: () => Promise<void>
}

/**
 * Prefect's own database: a fresh one on the test PostgreSQL when there is one. On its default,
 * SQLite, the one server the whole run shares answers "database is locked" under the suite's
 * concurrent writes, and at times answers nothing at all for a minute or more (every call timed
 * out; the README's demo paragraph describes the same hang), which failed tests at random in CI
 * runs. SQLite when there is no PostgreSQL.
 */
async function prefectDatabase (postgres: TestPostgres): Promise<PrefectDatabase> {
  if (postgres.url === null) return { env: {}, describe: 'Prefect database: SQLite (no PostgreSQL)', drop: async () => {} }
  let dropDatabase: () => unknown = () => {}
  const url = new URL(await freshDatabase({ teardown: drop => { dropDatabase = drop } }, postgres.url))
  url.protocol = 'postgresql+asyncpg:'
  return {
    env: {
      PREFECT_API_DATABASE_CONNECTION_URL: url.toString(),
      // A fresh database has no block encryption key: Prefect makes one at the first block document,
      // and two test files creating their first at once both insert it (409 "Data integrity
      // conflict", met in a run). Given here, it is never made. Fernet's form: 32 bytes, url-safe base64.
      PREFECT_SERVER_ENCRYPTION_KEY: randomBytes(32).toString('base64').replaceAll('+', '-').replaceAll('/', '_')
    },
    describe: `Prefect database: PostgreSQL, database ${url.pathname.slice(1)}`,
    drop: async () => { await dropDatabase() }
  }
}

// PostgreSQL comes up while the venv is checked; Prefect then starts on a database of its own there.
const postgresReady = provideTestPostgres(REPO_ROOT, process.env)

const venvStarted = Date.now()
const authString = newTestAuthString()
const { venv, server, postgres, prefectDb } = await (async () => {
  let prefectDb: PrefectDatabase | undefined
  try {
    const venv = await ensurePrefectVenv({ onProgress: (line) => say(`venv: ${line}`) })
    say(`Prefect venv ${venv.dir} ready in ${Date.now() - venvStarted} ms`)
    const postgres = await postgresReady
    say(postgres.describe)
    prefectDb = await prefectDatabase(postgres)
    say(prefectDb.describe)
    const serverStarted = Date.now()
    const server = await startPrefectServer({ venv, authString, env: prefectDb.env })
    say(`Prefect server ${server.apiUrl} ready in ${Date.now() - serverStarted} ms`)
    return { venv, server, postgres, prefectDb }
  } catch (err) {
    await prefectDb?.drop().catch(() => undefined)
    await (await postgresReady).stop()
    throw err
  }
})()

const stopPeers = async (): Promise<void> => {
  await server.stop()
  await prefectDb.drop().catch((err: Error) => { say(`could not drop Prefect's database: ${err.message}`) })
  await postgres.stop()
}

const child = spawn(command, args, {
  stdio: 'inherit',
  env: {
    ...process.env,
    // So that `-- tap` works without npm having put node_modules/.bin on PATH.
    PATH: [join(REPO_ROOT, 'node_modules', '.bin'), process.env.PATH].filter(Boolean).join(delimiter),
    [TEST_ENV.apiUrl]: server.apiUrl,
    [TEST_ENV.authString]: authString,
    [TEST_ENV.venv]: venv.dir,
    ...(postgres.url !== null ? { [POSTGRES_URL_ENV]: postgres.url } : {}),
  },
})

// A terminal's Ctrl-C reaches the child too (same process group); a SIGTERM sent to us alone is
// passed on. Either way we wait for the child, then stop the server, rather than die first.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => { if (signal !== 'SIGINT') child.kill(signal) })
}

child.once('error', async (err) => {
  say(`cannot run ${command}: ${err.message}`)
  await stopPeers()
  process.exit(127)
})

child.once('exit', async (code, signal) => {
  await stopPeers()
  process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0))
})
