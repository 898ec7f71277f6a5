// Cold start is Cloud Run's request latency whenever an instance starts, so start-up loads only
// what serving a webhook or a probe needs. The Google clients and their gRPC stack, the ID-token
// library, the PostgreSQL driver and a YAML parser are each loaded on first use: this test starts
// the server as production does, with each of those features configured, and holds it to that —
// from the sources, and as the production artifact (scripts/build.ts), whose server script holds
// every package but runs each one's modules only when they are first required.
import t from 'tap'
import type { Test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { builtArtifact, temporaryDir } from './artifact.ts'
import { parentEnv, startService, type ServiceProcess } from './service-process.ts'
import { serverScriptIn } from '../../scripts/code-cache.ts'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const RECORDER = fileURLToPath(new URL('./record-imports.ts', import.meta.url))

/** Packages start-up must not load, with what loads them later. */
const LAZY = [
  '@google-cloud/run', // the first launch
  '@google-cloud/secret-manager', // the first secret read
  'google-gax',
  '@grpc/grpc-js', // the emulator endpoint's channel credentials, with the first launch
  'google-auth-library', // the first Google ID token to verify
  'pg', // a postgres:// store
  'yaml' // never at run time: the schemas come from src/openapi-schemas.ts
]

function packageOf (path: string): string | null {
  const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)
  return match === null ? null : match[1]
}

/**
 * Starts the server with every feature that needs a lazy package configured; the files it resolved
 * until it was stopped after /readyz, and Node's internal modules it had loaded.
 */
async function startUpImports (t: Test, args: string[], dir: string, env: Record<string, string> = {}): Promise<{ files: string[], internal: string[] }> {
  const { service, record } = await startRecorded(t, args, dir, 'silent', env)
  const { code } = await service.stop()
  t.equal(code, 0, service.output())
  const recorded = JSON.parse(readFileSync(record, 'utf8')) as string[]
  return {
    files: recorded.filter(url => url.startsWith('file:')).map(url => fileURLToPath(url)),
    internal: recorded.filter(url => url.startsWith('node-internal:')).map(url => url.slice('node-internal:'.length))
  }
}

async function startRecorded (t: Test, args: string[], dir: string, logLevel = 'silent', env: Record<string, string> = {}): Promise<{ service: ServiceProcess, record: string }> {
  const record = join(dir, 'imports.json')
  const service = await startService(t, {
    args: ['--import', RECORDER, ...args],
    cwd: REPO,
    env: {
      ...parentEnv(),
      RECORD_IMPORTS_FILE: record,
      PUSHPOOL_STORE_URL: `sqlite:${join(dir, 'pushpool.db')}`,
      PUSHPOOL_WEBHOOK_SECRETS: 'imports-webhook-secret-0123456789',
      PUSHPOOL_ADMIN_TOKENS: 'imports-admin-token-0123456789',
      PUSHPOOL_AUDIENCE: 'https://pushpool.example',
      PUSHPOOL_ADMIN_PRINCIPALS: 'ops@example.com',
      PUSHPOOL_CLOUD_RUN_ENDPOINT: '127.0.0.1:9',
      PUSHPOOL_SECRET_MANAGER_ENDPOINT: '127.0.0.1:9',
      PUSHPOOL_GCP_CREDENTIALS_SECRET: 'projects/p/secrets/key',
      PREFECT_API_URL: 'http://127.0.0.1:9/api',
      LOG_LEVEL: logLevel,
      ...env
    }
  })
  return { service, record }
}

function holdToLaziness (t: Test, packages: Set<string>, needed = ['fastify', 'pino', 'ajv'], lazy = LAZY): void {
  // What serving needs is there, so the recording itself worked.
  for (const name of needed) t.ok(packages.has(name), `${name} is loaded`)
  for (const name of lazy) t.notOk(packages.has(name), `${name} is not loaded at start-up`)
}

t.test('start-up from the sources, until /readyz answers, loads none of the packages that are loaded on first use', async t => {
  const dir = temporaryDir(t, 'pushpool-imports-')
  const { files } = await startUpImports(t, ['src/server.ts'], dir)
  holdToLaziness(t, new Set(files.map(packageOf).filter(p => p !== null)))
})

t.test('the artifact\'s start-up runs none of those packages\' modules, and reads no package code from node_modules', async t => {
  const dir = temporaryDir(t, 'pushpool-imports-')
  const dist = await builtArtifact(t)
  const coverage = join(dir, 'coverage')
  const { files, internal } = await startUpImports(t, [join(dist, 'server.js')], dir, { NODE_V8_COVERAGE: coverage })
  // undici is Node's fetch and WebSocket, which pushpool's start-up never uses; reading one of
  // node:http's lazy exports by name loads it (~15 ms). The sources import node:http as ES
  // modules do, which reads them all, so this holds for the artifact only.
  t.ok(internal.includes('internal/errors'), `Node's internal modules were recorded (${internal.length})`)
  t.notOk(internal.includes('internal/deps/undici/undici'), 'undici is not loaded at start-up')
  // Fastify requires node:https and node:http2 as it loads, for servers pushpool never makes: the
  // build defers both to first use (LAZY_REQUIRES in scripts/build.ts), and Prefect is plain http here.
  for (const builtin of ['http2', 'https', 'tls']) t.notOk(internal.includes(builtin), `node:${builtin} is not loaded at start-up`)
  // The packages are bundled; only data the sources find by path (the unidecode tables) comes from node_modules.
  const unbundled = files.filter(file => file.includes('/node_modules/') && !file.includes('/node_modules/unidecode/data/'))
  t.same(unbundled, [], 'no package code from node_modules')
  // In the script, esbuild wraps each package module in a function named after its path, which
  // runs when the module is first required: V8's coverage says which ran.
  const script = serverScriptIn(dist)
  const ran = new Set<string>()
  for (const file of readdirSync(coverage)) {
    const { result } = JSON.parse(readFileSync(join(coverage, file), 'utf8')) as { result: Array<{ url: string, functions: Array<{ functionName: string, ranges: Array<{ count: number }> }> }> }
    for (const { url, functions } of result) {
      if (!url.endsWith(`/${script}`)) continue
      for (const fn of functions) if (fn.ranges[0].count > 0 && fn.functionName.startsWith('node_modules/')) ran.add(packageOf(fn.functionName)!)
    }
  }
  // Its routes' schemas are compiled at build time, so Ajv does not run either.
  holdToLaziness(t, ran, ['fastify', 'pino'], [...LAZY, 'ajv'])
  // V8 holds each loaded file's source for the life of the process, as UTF-16 (twice the bytes)
  // once a single character is not ASCII: the build writes ASCII, the license comments apart.
  const sources = readdirSync(dist).filter(file => file.endsWith('.js'))
  const nonAscii = sources.filter(file => /[^\x00-\x7f]/.test(readFileSync(join(dist, file), 'latin1')))
  t.same(nonAscii, [], `every one of the ${sources.length} JavaScript files is ASCII`)
  const legal = readdirSync(dist).filter(file => file.endsWith('.LEGAL.txt'))
  t.ok(legal.includes(`${script}.LEGAL.txt`), `the packages' license comments are kept beside their files (${legal.join(', ')})`)
})

t.test('the first request that is not a probe warms the Google client up; probes do not', async t => {
  const dir = temporaryDir(t, 'pushpool-imports-')
  const { service, record } = await startRecorded(t, ['src/server.ts'], dir, 'debug')
  const warmedUp = (): Array<{ after?: string }> => service.output().split('\n').filter(line => line.includes('Google client warmed up')).map(line => JSON.parse(line) as { after?: string })
  for (const probe of ['/readyz', '/healthz']) await (await fetch(`${service.url}${probe}`)).arrayBuffer()
  const res = await fetch(`${service.url}/v1/dispatches`, { headers: { authorization: 'Bearer imports-admin-token-0123456789' } })
  t.equal(res.status, 200, 'an admin request')
  for (let waited = 0; warmedUp().length === 0 && waited < 60_000; waited += 100) await sleep(100)
  t.same(warmedUp().map(line => line.after), ['/v1/dispatches'], 'the Google client was loaded and built once, after the admin request, not the probes, and without a launch')
  const { code } = await service.stop()
  t.equal(code, 0, 'stops cleanly')
  const packages = new Set((JSON.parse(readFileSync(record, 'utf8')) as string[]).map(url => packageOf(url)))
  for (const loaded of ['@google-cloud/run', 'google-gax', '@grpc/grpc-js']) t.ok(packages.has(loaded), `${loaded} is loaded`)
})
