// `npm run build`: the production artifact in dist/, which both the Dockerfile's image and
// `npm start` run (`node dist/server.js`). Built for a cold start (Cloud Run scales to zero):
//
// - one ESM bundle per entry (dist/server.js, dist/cli.js) with code splitting (esbuild): start-up
//   reads a handful of files instead of ~700 modules from node_modules, and what start-up does not
//   need (the Google clients, the PostgreSQL driver, the CLI's other commands) stays in chunks that
//   load on first use, as the sources' dynamic import()s say;
// - the subset of Cloud Run's protos.json that the clients use (scripts/protos-subset.ts), which
//   halves what google-gax parses into gRPC definitions when the first client is built;
// - the routes' validators and serializers compiled at build time (scripts/precompile-schemas.ts),
//   which a start would otherwise compile with ajv and fast-json-stringify, and likewise the JSON
//   Schema meta-schema's validator and the shipped template's variables validators, which a first
//   dispatch would;
// - what Fastify and google-gax require as they load for what pushpool seldom or never uses
//   (LAZY_REQUIRES), loaded on first use;
// - the V8 compile cache (scripts/compile-cache.ts), which the entries turn on before loading the rest;
// - ASCII source without comments or indentation, which V8 holds in memory at one byte a character.
//
// The bundle still needs the production node_modules beside dist/ at run time, for the few files the
// packages open by path: the unidecode tables (src/jobconfig/text-unidecode.ts), protobufjs's
// optional `long`, the emulator's .proto files (`pushpool emulator`).
//
//   node scripts/build.ts [--outdir dist] [--no-compile-cache] [--cache-uid N --cache-gid N]
import { build, type Plugin } from 'esbuild'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { COMPILE_CACHE_DIR, writeCompileCache } from './compile-cache.ts'
import { cloudRunProtosSubset, cloudRunServicesUsed } from './protos-subset.ts'
import { metaSchemaValidatorModule, precompiledSchemasModule, precompiledValidatorsModule } from './precompile-schemas.ts'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const requireFromRepo = createRequire(join(REPO, 'package.json'))

/** Every bundled file starts so: CommonJS packages call require() (for Node's built-ins and the few files they load by path). */
const BANNER = "import { createRequire as __pushpoolCreateRequire } from 'node:module'; const require = __pushpoolCreateRequire(import.meta.url); const __pushpoolDist = import.meta.dirname;"

/**
 * The entries turn the compile cache on first, then import the service: a module's static imports
 * are compiled before its own code runs, so the rest must be a dynamic import().
 */
function entry (load: string): string {
  return `#!/usr/bin/env node
import { enableCompileCache } from 'node:module'
enableCompileCache({ directory: import.meta.dirname + '/${COMPILE_CACHE_DIR}', portable: true })
${load}
`
}
const ENTRIES: Record<string, string> = {
  server: entry("const { main } = await import('./src/server.ts')\nawait main()"),
  cli: entry("const { run } = await import('./src/cli.ts')\nawait run(process.argv.slice(2))")
}

/**
 * What the packages require as they load for what pushpool seldom or never uses, by file: in the
 * artifact each expression is evaluated when a property of its value is first read. The whole
 * expression is deferred, not just its require(): TypeScript's `__importStar` reads the module as it
 * wraps it. test/production/artifact-lazy-requires.test.ts holds gax's to it.
 */
const LAZY_REQUIRES: Record<string, string[]> = {
  // Servers pushpool never makes. Alone, http2 takes ~6 ms to load, and https with TLS ~1 ms more
  // (grpc-js loads http2 itself, with the first launch).
  'fastify/lib/server.js': ["require('node:https')", "require('node:http2')"],
  // For plugins that name the Fastify versions they need, which none of pushpool's do (~3 ms).
  'fastify/lib/plugin-utils.js': ["require('semver')"],
  // gax builds gRPC definitions with proto-loader, which loads protobufjs's descriptor.proto types as
  // it loads; pushpool's clients get theirs from src/gcp/grpc-definitions.ts instead.
  'google-gax/build/src/grpc.js': ['__importStar(require("@grpc/proto-loader"))'],
  // Generated protobufjs classes for the IAM, Locations and Operations APIs (645 kB of code), which
  // gax only exports: its own clients load the same APIs from JSON. Its long-running operations
  // build requests with the Operations classes only to poll or cancel one that is not yet done.
  ...Object.fromEntries(['index.js', 'fallback.js'].map(file => [`google-gax/build/src/${file}`,
    ['iam_service', 'locations', 'operations'].map(api => `__importStar(require("../protos/${api}"))`)])),
  'google-gax/build/src/longRunningCalls/longrunning.js': ['__importStar(require("../../protos/operations"))']
}
const LAZY_REQUIRE_FUNCTION = 'function __pushpoolLazy (load) { let m; return new Proxy({}, { get: (_, key) => (m ??= load())[key] }) }\n'

/** `text` with each of `file`'s LAZY_REQUIRES wrapped; the build fails if the package no longer has one. */
function deferred (text: string, file: string): string {
  for (const expression of LAZY_REQUIRES[file]) {
    if (!text.includes(expression)) throw new Error(`${file} no longer has ${expression}: update LAZY_REQUIRES in scripts/build.ts`)
    // The require() stays literal inside the function, so that esbuild still bundles what it names.
    text = text.replace(expression, `__pushpoolLazy(() => ${expression})`)
  }
  return text
}

/** The artifact's layout, relative to `outdir` (a flat folder one or more levels below the repository). */
function plugin (outdir: string): Plugin {
  const fromOutdir = (path: string): string => relative(outdir, path).split('\\').join('/')
  return {
    name: 'pushpool',
    setup (b) {
      b.onResolve({ filter: /^pushpool-entry:/ }, args => ({ path: args.path.slice('pushpool-entry:'.length), namespace: 'pushpool-entry' }))
      b.onLoad({ filter: /.*/, namespace: 'pushpool-entry' }, args => ({ contents: ENTRIES[args.path], resolveDir: REPO, loader: 'js' }))

      // Node gives a CommonJS package's exports to import() as named exports; an esbuild chunk
      // would give only `default`. A dynamic import() of such a package goes through a module
      // that names them (as they are after the package loads).
      b.onResolve({ filter: /^[^./]/ }, async args => {
        if (args.kind !== 'dynamic-import' || args.namespace === 'cjs-exports' || args.path.startsWith('node:')) return undefined
        const resolved = await b.resolve(args.path, { kind: 'require-call', resolveDir: args.resolveDir, importer: args.importer })
        if (resolved.errors.length > 0 || resolved.external || !isCommonJs(resolved.path)) return undefined
        return { path: args.path, namespace: 'cjs-exports', pluginData: { resolveDir: args.resolveDir } }
      })
      b.onLoad({ filter: /.*/, namespace: 'cjs-exports' }, args => {
        const names = Object.keys(requireFromRepo(args.path) as object).filter(name => name !== 'default')
        return { contents: namedExportsOf(args.path, names), resolveDir: args.pluginData.resolveDir as string, loader: 'js' }
      })

      // pushpool's sources require Node's built-ins rather than import them: an ES import of a
      // built-in makes Node build its module namespace from every export, and node:http's lazy
      // exports (WebSocket, …) then load undici, ~50 ms of start-up for what pushpool never uses.
      // Accessor exports stay behind `default`, so that no import reads them (importing one by name
      // fails the build).
      b.onResolve({ filter: /^node:/ }, args => {
        if (args.kind !== 'import-statement' || !args.importer.startsWith(join(REPO, 'src'))) return undefined
        return { path: args.path, namespace: 'node-builtin' }
      })
      b.onLoad({ filter: /.*/, namespace: 'node-builtin' }, args => {
        const names = Object.entries(Object.getOwnPropertyDescriptors(requireFromRepo(args.path) as object))
          .filter(([name, descriptor]) => 'value' in descriptor && name !== 'default').map(([name]) => name)
        return { contents: namedExportsOf(args.path, names), resolveDir: REPO, loader: 'js' }
      })

      // pushpool's modules find files beside their source (openapi.yaml one level up, the unidecode
      // tables through node_modules): import.meta.url keeps naming the source file's place.
      b.onLoad({ filter: /\/src\/.*\.ts$/ }, args => {
        const text = readFileSync(args.path, 'utf8')
        if (!text.includes('import.meta.url')) return undefined
        const url = `new URL(${JSON.stringify(fromOutdir(args.path))}, import.meta.url).href`
        return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' }
      })
      // The packages' CommonJS files: LAZY_REQUIRES's expressions deferred, and __dirname and
      // __filename (google-gax's protos folder, pino's workers, grpc-js's channelz protos) naming
      // their place in node_modules, as import.meta.url does for pushpool's own.
      b.onLoad({ filter: /\/node_modules\/.*\.c?js$/ }, args => {
        const lazy = Object.keys(LAZY_REQUIRES).find(name => args.path.endsWith(`/node_modules/${name}`))
        let text = readFileSync(args.path, 'utf8')
        const usesDirname = /\b__(dirname|filename)\b/.test(text) && isCommonJs(args.path)
        if (lazy === undefined && !usesDirname) return undefined
        if (lazy !== undefined) text = LAZY_REQUIRE_FUNCTION + deferred(text, lazy)
        if (usesDirname) text = `var __filename = require('node:path').join(__pushpoolDist, ${JSON.stringify(fromOutdir(args.path))}), __dirname = require('node:path').dirname(__filename);` + text
        return { contents: text, loader: 'js' }
      })

      // The routes' validators and serializers, compiled now rather than at every start.
      b.onLoad({ filter: /\/src\/precompiled-schemas\.ts$/ }, async () => ({ contents: await precompiledSchemasModule(), resolveDir: REPO, loader: 'js' }))
      b.onLoad({ filter: /\/src\/jobconfig\/json-schema-meta\.ts$/ }, () => ({ contents: metaSchemaValidatorModule(), resolveDir: REPO, loader: 'js' }))
      b.onLoad({ filter: /\/src\/jobconfig\/precompiled-validators\.ts$/ }, async args => ({ contents: await precompiledValidatorsModule(), resolveDir: dirname(args.path), loader: 'js' }))

      const services = cloudRunServicesUsed(join(REPO, 'src'), join(REPO, 'package.json'))
      b.onLoad({ filter: /\/@google-cloud\/run\/build\/protos\/protos\.json$/ }, args => ({
        contents: JSON.stringify(cloudRunProtosSubset(JSON.parse(readFileSync(args.path, 'utf8')), services)),
        loader: 'json'
      }))
    }
  }
}

/** An ES module that requires `specifier` and exports it as `default` and these properties of it by name. */
function namedExportsOf (specifier: string, names: string[]): string {
  return [
    `const m = require(${JSON.stringify(specifier)})`,
    'export default m',
    ...names.map((name, i) => `const e${i} = m[${JSON.stringify(name)}]\nexport { e${i} as ${JSON.stringify(name)} }`)
  ].join('\n')
}

/** Whether Node loads this file as CommonJS (by extension, else by the nearest package.json's "type"). */
function isCommonJs (path: string): boolean {
  if (path.endsWith('.cjs')) return true
  if (path.endsWith('.mjs')) return false
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    let text: string
    try {
      text = readFileSync(join(dir, 'package.json'), 'utf8')
    } catch {
      continue
    }
    return (JSON.parse(text) as { type?: string }).type !== 'module'
  }
  return true
}

export async function buildArtifact (outdir: string): Promise<void> {
  rmSync(outdir, { recursive: true, force: true })
  const result = await build({
    absWorkingDir: REPO,
    entryPoints: { server: 'pushpool-entry:server', cli: 'pushpool-entry:cli' },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    chunkNames: '[name]-[hash]',
    // pg's optional native binding, which pushpool does not install.
    external: ['pg-native'],
    banner: { js: BANNER },
    // No comments or indentation: V8 keeps each loaded file's source as a string for the life of
    // the process, ~35% smaller so. And pure ASCII (esbuild escapes other characters in code): a
    // source with any other character, in a comment even (an ä too), is held as UTF-16, twice its
    // size. The packages' license comments go to <chunk>.LEGAL.txt beside each chunk, which names it.
    minifyWhitespace: true,
    legalComments: 'linked',
    // For stack traces and profiles (`node --enable-source-maps`, bench/profile.ts); never read otherwise.
    sourcemap: 'linked',
    sourcesContent: false,
    metafile: true,
    logLevel: 'warning',
    plugins: [plugin(outdir)]
  })
  writeFileSync(join(outdir, 'meta.json'), JSON.stringify(result.metafile))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      outdir: { type: 'string', default: 'dist' },
      'no-compile-cache': { type: 'boolean', default: false },
      'cache-uid': { type: 'string' },
      'cache-gid': { type: 'string' }
    }
  })
  const outdir = resolve(REPO, values.outdir!)
  let started = performance.now()
  await buildArtifact(outdir)
  process.stdout.write(`bundled into ${relative(REPO, outdir)}/ in ${Math.round(performance.now() - started)} ms\n`)
  if (!values['no-compile-cache']) {
    started = performance.now()
    const files = writeCompileCache({
      dist: outdir,
      ...(values['cache-uid'] !== undefined ? { uid: Number(values['cache-uid']) } : {}),
      ...(values['cache-gid'] !== undefined ? { gid: Number(values['cache-gid']) } : {})
    })
    process.stdout.write(`compile cache for ${files} files in ${Math.round(performance.now() - started)} ms\n`)
  }
}
