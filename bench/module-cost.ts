// What pushpool's start-up loads, and what each package costs on its own: for the cold-start and
// idle-memory figures. (1) A process builds the app exactly as server.ts does, from the sources
// (the artifact bundles the same module graph), and lists the npm packages it loaded before it was
// ready. (2) For each package, a fresh `node` imports it alone:
// import time and RSS over a bare node process (medians of three).
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { REPO } from './pushpool-process.ts'
import { summarize } from './stats.ts'

export interface PackageCost { package: string, loaded_at_startup: boolean, import_ms: number, rss_mb: number }

export interface ModuleCostResult {
  bare_node_rss_mb: number
  loaded_at_startup: string[]
  packages: PackageCost[]
}

const CANDIDATES = ['fastify', 'pino', 'ajv', 'yaml', '@grpc/grpc-js', 'google-auth-library', 'pg', '@google-cloud/run', '@google-cloud/secret-manager']

function node (script: string, cwd = REPO): string {
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' } }).trim()
}

export function measureModuleCost (): ModuleCostResult {
  const startup = node(`
    import { createRequire } from 'node:module'
    const { buildServer } = await import(${JSON.stringify(join(REPO, 'src', 'server.ts'))})
    const { loadConfig } = await import(${JSON.stringify(join(REPO, 'src', 'config.ts'))})
    const app = await buildServer(loadConfig({ PUSHPOOL_WEBHOOK_SECRETS: 'x'.repeat(24), PUSHPOOL_STORE_URL: 'sqlite::memory:', LOG_LEVEL: 'silent' }))
    await app.ready()
    const pkgs = new Set()
    for (const k of Object.keys(createRequire(import.meta.url).cache)) { const m = /node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(k); if (m) pkgs.add(m[1]) }
    console.log(JSON.stringify([...pkgs].sort()))
    await app.close()`)
  const loaded = JSON.parse(startup.split('\n').at(-1) ?? '[]') as string[]
  const measure = (pkg: string | null): { ms: number, rss: number } => {
    const runs = [0, 1, 2].map(() => JSON.parse(node(`
      const t = performance.now()
      ${pkg === null ? '' : `await import(${JSON.stringify(pkg)})`}
      const ms = performance.now() - t
      globalThis.gc?.()
      await new Promise(r => setTimeout(r, 200))
      console.log(JSON.stringify({ ms, rss: process.memoryUsage().rss / 2 ** 20 }))`)) as { ms: number, rss: number })
    return { ms: summarize(runs.map(r => r.ms)).median, rss: summarize(runs.map(r => r.rss)).median }
  }
  const bare = measure(null)
  return {
    bare_node_rss_mb: Math.round(bare.rss * 10) / 10,
    loaded_at_startup: loaded,
    packages: CANDIDATES.map(pkg => {
      const m = measure(pkg)
      return { package: pkg, loaded_at_startup: loaded.includes(pkg), import_ms: Math.round(m.ms), rss_mb: Math.round((m.rss - bare.rss) * 10) / 10 }
    })
  }
}
