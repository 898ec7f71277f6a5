// Node's compile cache for the production artifact's ES modules (the CLI's; the server is a script
// with a code cache of its own, scripts/code-cache.ts), written at build time so that a command
// deserialises compiled code instead of parsing and compiling its chunks. dist/cli.js turns the
// cache on (module.enableCompileCache) before it imports the rest; this compiles every module of
// dist/ once, with the cache on, into dist/compile-cache.
//
//   node scripts/compile-cache.ts [--dist dist] [--uid N --gid N]
//
// Node keeps one cache folder per Node version, V8 flags and *user id*, so the cache must be written
// by the user that runs the CLI: the Dockerfile builds as root and runs as `node` (uid 1000), so
// it passes --uid 1000 --gid 1000 (root may write as another user). The cache is portable (its keys
// are paths relative to the folder), so dist/ can be copied elsewhere, as the image's stages do. The
// files are left readable by all and writable by no one but their owner: the CLI only reads them.
import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, readdirSync, rmSync, mkdirSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { isServerScript } from './code-cache.ts'

/** The cache's folder, beside the entries; dist/cli.js names it too (scripts/build.ts). */
export const COMPILE_CACHE_DIR = 'compile-cache'

export interface CompileCacheOptions {
  dist: string
  /** Write the cache as this user (and group): the one that will run the server. */
  uid?: number
  gid?: number
}

/** Compiles every JavaScript file of `dist` with the compile cache on; returns the number of files. */
export function writeCompileCache (options: CompileCacheOptions): number {
  const dist = resolve(options.dist)
  const cache = join(dist, COMPILE_CACHE_DIR)
  rmSync(cache, { recursive: true, force: true })
  mkdirSync(cache)
  const files = readdirSync(dist).filter(f => f.endsWith('.js') && !isServerScript(f))
  if (!files.includes('server.js')) throw new Error(`${dist} has no server.js: build it first (scripts/build.ts)`)
  const asUser = options.uid !== undefined && options.uid !== process.getuid?.()
  if (asUser) chownSync(cache, options.uid!, options.gid ?? options.uid!)
  // The entries would run the service, so only the other files are imported; the entries are tiny.
  // Importing a chunk runs its top level, which for the bundle's chunks defines modules and runs
  // none (the packages' CommonJS bodies run when first required).
  const script = `
    import { enableCompileCache, flushCompileCache, constants } from 'node:module'
    const result = enableCompileCache({ directory: ${JSON.stringify(cache)}, portable: true })
    if (result.status !== constants.compileCacheStatus.ENABLED) throw new Error('compile cache: ' + (result.message ?? result.status))
    for (const file of ${JSON.stringify(files.filter(f => f !== 'server.js' && f !== 'cli.js'))}) await import(${JSON.stringify(`${dist}/`)} + file)
    flushCompileCache()
    // A chunk's top level may leave a handle open (a timer, a listener): the cache is written.
    process.exit(0)
  `
  const child = spawnSync(process.execPath, ['--input-type=module', '--eval', script], {
    cwd: dist,
    // The cache is keyed by V8's flags too: the same NODE_OPTIONS as the server's (the Dockerfile's
    // ENV applies to its build stage as to the image).
    env: { PATH: process.env.PATH ?? '', HOME: dist, NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' },
    encoding: 'utf8',
    ...(asUser ? { uid: options.uid, gid: options.gid ?? options.uid } : {})
  })
  if (child.status !== 0) throw new Error(`writing the compile cache failed (${child.status ?? child.signal}):\n${child.stderr}`)
  const paths = [cache, ...readdirSync(cache, { recursive: true, encoding: 'utf8' }).map(entry => join(cache, entry))]
  for (const path of paths) {
    if (asUser) chownSync(path, process.getuid!(), process.getgid!())
    chmodSync(path, statSync(path).isDirectory() ? 0o755 : 0o644)
  }
  return files.length
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { dist: { type: 'string', default: 'dist' }, uid: { type: 'string' }, gid: { type: 'string' } } })
  const started = performance.now()
  const files = writeCompileCache({
    dist: values.dist!,
    ...(values.uid !== undefined ? { uid: Number(values.uid) } : {}),
    ...(values.gid !== undefined ? { gid: Number(values.gid) } : {})
  })
  process.stdout.write(`compile cache: ${files} files in ${Math.round(performance.now() - started)} ms\n`)
}
