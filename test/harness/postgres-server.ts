// The PostgreSQL that `npm test` hands its test files, the way .ci/run provides one: the server
// PUSHPOOL_TEST_POSTGRES_URL already names, else scripts/postgres.sh's loopback cluster (started
// here, and stopped again at the end if it was not running before). When neither is possible the
// tests still run and skip their PostgreSQL cases; `describe` says which, in plain words.

import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { POSTGRES_URL_ENV } from '../store/postgres-database.ts'

export interface TestPostgres {
  /** null when no server could be had. */
  url: string | null
  /** One line for the runner to print: where the server came from, or why there is none. */
  describe: string
  stop: () => Promise<void>
}

const run = promisify(execFile)

export async function provideTestPostgres (repoRoot: string, env: NodeJS.ProcessEnv): Promise<TestPostgres> {
  const given = env[POSTGRES_URL_ENV]
  if (given !== undefined && given !== '') {
    return { url: given, describe: `PostgreSQL: the server ${POSTGRES_URL_ENV} names`, stop: async () => {} }
  }
  const script = join(repoRoot, 'scripts', 'postgres.sh')
  const wasRunning = await run('bash', [script, 'status']).then(() => true, () => false)
  try {
    const { stdout } = await run('bash', [script], { cwd: repoRoot })
    const url = new RegExp(`^${POSTGRES_URL_ENV}=(\\S+)$`, 'm').exec(stdout)?.[1]
    if (url === undefined) throw new Error(`scripts/postgres.sh printed no ${POSTGRES_URL_ENV}`)
    return {
      url,
      describe: `PostgreSQL: ${wasRunning ? 'the cluster scripts/postgres.sh started earlier' : 'started with scripts/postgres.sh, stopped at the end'} (${new URL(url).host})`,
      stop: async () => { if (!wasRunning) await run('bash', [script, 'stop']).catch(() => undefined) }
    }
  } catch (err) {
    const why = reason((err as { stderr?: string }).stderr ?? '') ?? (err as Error).message
    const skipping = await filesWithPostgresCases(repoRoot)
    return {
      url: null,
      describe: `PostgreSQL could not be started (${why}), so these test files skip their PostgreSQL cases: ${skipping.join(', ')}. ` +
        `To run them, set ${POSTGRES_URL_ENV} to a server where the user may CREATE DATABASE.`,
      stop: async () => {}
    }
  }
}

/** The line of postgres.sh's output that says what went wrong: the server's FATAL, or the script's own word. */
function reason (stderr: string): string | undefined {
  const lines = stderr.split('\n').map(line => line.trim()).filter(line => line !== '')
  const telling = lines.filter(line => /FATAL:|ERROR:|^\[postgres\.sh\] .*(not installed|no PostgreSQL)/.test(line)).at(-1)
  // The server's log lines start with a timestamp and a process id.
  return (telling ?? lines.at(-1))?.replace(/^\d{4}-\d\d-\d\d [\d:.]+ \w+ \[\d+\] /, '')
}

/** The test files that ask for the server (through postgres-database.ts), so the list cannot go stale. */
async function filesWithPostgresCases (repoRoot: string): Promise<string[]> {
  const testDir = join(repoRoot, 'test')
  const entries = await readdir(testDir, { recursive: true })
  const files: string[] = []
  for (const entry of entries.filter(name => name.endsWith('.test.ts')).sort()) {
    const path = join(testDir, entry)
    if ((await readFile(path, 'utf8')).includes('postgresTestUrl()')) files.push(relative(repoRoot, path))
  }
  return files
}
