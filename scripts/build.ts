// `npm run build`: the production artifact in dist/, which both the Dockerfile's image and
// `npm start` run (`node dist/server.js`). Built for a cold start (Cloud Run scales to zero):
//
// - the server as one classic script, dist/server-script-<hash>.js (esbuild, CommonJS in a function),
//   with a V8 code cache written after a training run (scripts/code-cache.ts): a new instance
//   deserializes the code that a start-up and a first dispatch compiled instead of compiling it
//   again (src/artifact/script.ts says why a script's cache rather than Node's module cache).
//   The packages in it run only when first required, as the sources' dynamic import()s say: what
//   start-up does not need (the Google clients, the PostgreSQL driver) is in the file, not run;
// - the CLI (dist/cli.js) as ES modules with code splitting, each command's code in chunks loaded
//   when it runs, with Node's compile cache (scripts/compile-cache.ts);
// - the subset of Cloud Run's protos.json that the clients use (scripts/protos-subset.ts), which
//   halves what google-gax parses into gRPC definitions when the first client is built, and of
//   Cloud Tasks' only the v2 client, its file and its API version (PACKAGE_PARTS, BUNDLED_READS);
// - the routes' validators and serializers compiled at build time (scripts/precompile-schemas.ts),
//   which a start would otherwise compile with ajv and fast-json-stringify, and likewise the JSON
//   Schema meta-schema's validator and the shipped template's variables validators, which a first
//   dispatch would;
// - what Fastify and google-gax require as they load for what pushpool seldom or never uses
//   (LAZY_REQUIRES), loaded on first use;
// - ASCII source without comments or indentation, which V8 holds in memory at one byte a character.
//
// The bundles still need the production node_modules beside dist/ at run time, for the few files
// the packages open by path: the unidecode tables (src/jobconfig/text-unidecode.ts), protobufjs's
// optional `long`, the emulator's .proto files (`pushpool emulator`).
//
//   node scripts/build.ts [--outdir dist] [--no-compile-cache] [--cache-uid N --cache-gid N]
//
// --no-compile-cache leaves both caches out (the artifact works without them, only slower).
import { build, type BuildOptions, type Plugin } from 'esbuild'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { COMPILE_CACHE_DIR, writeCompileCache } from './compile-cache.ts'
import { SERVER_SCRIPT, codeCacheOf, writeServerCodeCache } from './code-cache.ts'
import { cloudRunProtosSubset, cloudRunServicesUsed, protosWithout } from './protos-subset.ts'
import { metaSchemaValidatorModule, precompiledSchemasModule, precompiledValidatorsModule } from './precompile-schemas.ts'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const requireFromRepo = createRequire(join(REPO, 'package.json'))

/**
 * Every ES module of the artifact starts so: CommonJS packages call require() (for Node's built-ins
 * and the few files they load by path), and pushpool's modules name their source file's place
 * (see the plugin).
 */
const MODULE_BANNER = "import { createRequire as __pushpoolCreateRequire } from 'node:module'; const require = __pushpoolCreateRequire(import.meta.url); const __pushpoolDist = import.meta.dirname; const __pushpoolSourceUrl = path => new URL(path, import.meta.url).href;"

/**
 * The server script is a function expression, its value, which src/artifact/script.ts calls with
 * require and the folder; the same helper for pushpool's modules is defined from them.
 */
const SCRIPT_BANNER = "(function (require, module, __pushpoolDist) { const __pushpoolSourceUrl = path => require('node:url').pathToFileURL(require('node:path').join(__pushpoolDist, path)).href;"

/**
 * The CLI's entry turns Node's compile cache on first, then imports the rest: a module's static
 * imports are compiled before its own code runs, so the rest must be a dynamic import().
 */
const CLI_ENTRY = `#!/usr/bin/env node
import { enableCompileCache } from 'node:module'
enableCompileCache({ directory: import.meta.dirname + '/${COMPILE_CACHE_DIR}', portable: true })
const { run } = await import('./src/cli.ts')
await run(process.argv.slice(2))
`

/**
 * The server's entry loads the server script with its code cache (NODE_DISABLE_COMPILE_CACHE=1
 * turns it off, as it does Node's), and runs it. The script's name has a hash of its content, and
 * its cache is named after it: V8 checks a cache against its script's length, not its content, so a
 * cache must never meet another build's script of the same length.
 */
function serverEntry (script: string): string {
  return `#!/usr/bin/env node
import { loadScript } from './src/artifact/script.ts'
const dist = import.meta.dirname
const { exports, codeCache } = loadScript(dist + '/${script}', process.env.NODE_DISABLE_COMPILE_CACHE === '1' ? null : dist + '/${codeCacheOf(script)}')
await exports.main(process.env, { codeCache })
`
}

/** The server script's module: main. */
const SERVER_SCRIPT_ENTRY = `export { main } from './src/server.ts'
`

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
/**
 * What the packages read by a path they compute, which esbuild cannot follow, made a require() it
 * bundles: by file, each expression and its replacement. The build fails if a package no longer has
 * the expression.
 */
const BUNDLED_READS: Record<string, Array<[string, string]>> = {
  // Cloud Tasks' protos, so that the bundle holds them without the API versions the v2 client never
  // meets (TASKS_OTHER_VERSIONS).
  '@google-cloud/tasks/build/cjs/src/v2/cloud_tasks_client.cjs': [
    [`(0, _jsonHelper.getJSON)(_path["default"].join(dirname, '..', '..', '..', 'protos/protos.json'))`, "require('../../../protos/protos.json')"]
  ]
}
/** @google-cloud/tasks' protos.json holds three API versions; pushpool's client is v2's. */
const TASKS_OTHER_VERSIONS = ['google.cloud.tasks.v2beta2', 'google.cloud.tasks.v2beta3']

/** `text` with each of `file`'s BUNDLED_READS made a require(). */
function bundledReads (text: string, file: string): string {
  for (const [expression, replacement] of BUNDLED_READS[file]) {
    if (!text.includes(expression)) throw new Error(`${file} no longer has ${expression}: update BUNDLED_READS in scripts/build.ts`)
    text = text.replace(expression, replacement)
  }
  return text
}

/**
 * Packages whose index loads far more than the part of it pushpool imports: a dynamic import() of
 * one is bundled as the file of the package (beside its CommonJS entry) that holds that part, with
 * the names pushpool takes from it. @google-cloud/tasks' index also loads its v2beta2 and v2beta3
 * clients and runs its generated protobufjs classes (protos.cjs, 1.2 MB of code), for
 * CloudTasksClient, which is v2's: measured side by side, 3.6 MB of RSS for the life of an instance
 * with Cloud Tasks timers (the deployed setting) and 60 ms of CPU at its first timer. The package's
 * exports map hides the file from the sources.
 */
const PACKAGE_PARTS: Record<string, { file: string, names: string[] }> = {
  '@google-cloud/tasks': { file: 'v2/index.cjs', names: ['CloudTasksClient'] }
}

/** The file of PACKAGE_PARTS[pkg]; the build fails unless it exports the same values as the package under those names. */
function packagePart (pkg: string): string {
  const { file, names } = PACKAGE_PARTS[pkg]
  const path = join(dirname(requireFromRepo.resolve(pkg)), file)
  const [whole, part] = [requireFromRepo(pkg) as Record<string, unknown>, requireFromRepo(path) as Record<string, unknown>]
  const differing = names.filter(name => part[name] === undefined || part[name] !== whole[name])
  if (differing.length > 0) throw new Error(`${path} does not export ${pkg}'s ${differing.join(', ')}: update PACKAGE_PARTS in scripts/build.ts`)
  return path
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

/**
 * The artifact's layout, relative to `outdir` (a flat folder one or more levels below the
 * repository); `entries`: the entry modules' code, by name.
 */
function plugin (outdir: string, entries: Record<string, string>): Plugin {
  const fromOutdir = (path: string): string => relative(outdir, path).split('\\').join('/')
  return {
    name: 'pushpool',
    setup (b) {
      b.onResolve({ filter: /^pushpool-entry:/ }, args => ({ path: args.path.slice('pushpool-entry:'.length), namespace: 'pushpool-entry' }))
      b.onLoad({ filter: /.*/, namespace: 'pushpool-entry' }, args => ({ contents: entries[args.path], resolveDir: REPO, loader: 'js' }))

      // Node gives a CommonJS package's exports to import() as named exports; an esbuild chunk
      // would give only `default`. A dynamic import() of such a package goes through a module
      // that names them (as they are after the package loads).
      b.onResolve({ filter: /^[^./]/ }, async args => {
        if (args.kind !== 'dynamic-import' || args.namespace === 'cjs-exports' || args.path.startsWith('node:')) return undefined
        if (Object.hasOwn(PACKAGE_PARTS, args.path)) {
          return { path: packagePart(args.path), namespace: 'cjs-exports', pluginData: { resolveDir: args.resolveDir, names: PACKAGE_PARTS[args.path].names } }
        }
        const resolved = await b.resolve(args.path, { kind: 'require-call', resolveDir: args.resolveDir, importer: args.importer })
        if (resolved.errors.length > 0 || resolved.external || !isCommonJs(resolved.path)) return undefined
        return { path: args.path, namespace: 'cjs-exports', pluginData: { resolveDir: args.resolveDir } }
      })
      b.onLoad({ filter: /.*/, namespace: 'cjs-exports' }, args => {
        const names = (args.pluginData.names as string[] | undefined) ?? Object.keys(requireFromRepo(args.path) as object).filter(name => name !== 'default')
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
      // tables through node_modules): import.meta.url keeps naming the source file's place, in
      // both bundles (a script has no import.meta).
      b.onLoad({ filter: /\/src\/.*\.ts$/ }, args => {
        const text = readFileSync(args.path, 'utf8')
        if (!text.includes('import.meta.url')) return undefined
        return { contents: text.replaceAll('import.meta.url', `__pushpoolSourceUrl(${JSON.stringify(fromOutdir(args.path))})`), loader: 'ts' }
      })
      // The packages' CommonJS files: LAZY_REQUIRES's expressions deferred, and __dirname and
      // __filename (google-gax's protos folder, pino's workers, grpc-js's channelz protos) naming
      // their place in node_modules, as import.meta.url does for pushpool's own.
      b.onLoad({ filter: /\/node_modules\/.*\.c?js$/ }, args => {
        const lazy = Object.keys(LAZY_REQUIRES).find(name => args.path.endsWith(`/node_modules/${name}`))
        const reads = Object.keys(BUNDLED_READS).find(name => args.path.endsWith(`/node_modules/${name}`))
        let text = readFileSync(args.path, 'utf8')
        const usesDirname = /\b__(dirname|filename)\b/.test(text) && isCommonJs(args.path)
        if (lazy === undefined && reads === undefined && !usesDirname) return undefined
        if (lazy !== undefined) text = LAZY_REQUIRE_FUNCTION + deferred(text, lazy)
        if (reads !== undefined) text = bundledReads(text, reads)
        if (usesDirname) text = `var __filename = require('node:path').join(__pushpoolDist, ${JSON.stringify(fromOutdir(args.path))}), __dirname = require('node:path').dirname(__filename);` + text
        return { contents: text, loader: 'js' }
      })

      // The routes' validators and serializers, compiled now rather than at every start.
      b.onLoad({ filter: /\/src\/precompiled-schemas\.ts$/ }, async () => ({ contents: await precompiledSchemasModule(), resolveDir: REPO, loader: 'js' }))
      b.onLoad({ filter: /\/src\/jobconfig\/json-schema-meta\.ts$/ }, () => ({ contents: metaSchemaValidatorModule(), resolveDir: REPO, loader: 'js' }))
      b.onLoad({ filter: /\/src\/jobconfig\/precompiled-validators\.ts$/ }, async args => ({ contents: await precompiledValidatorsModule(), resolveDir: dirname(args.path), loader: 'js' }))

      b.onLoad({ filter: /\/@google-cloud\/tasks\/build\/protos\/protos\.json$/ }, args => ({
        contents: JSON.stringify(protosWithout(JSON.parse(readFileSync(args.path, 'utf8')), TASKS_OTHER_VERSIONS)),
        loader: 'json'
      }))
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
  const common = (entries: Record<string, string>): BuildOptions => ({
    absWorkingDir: REPO,
    entryPoints: Object.fromEntries(Object.keys(entries).map(name => [name, `pushpool-entry:${name}`])),
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node24',
    // pg's optional native binding, which pushpool does not install.
    external: ['pg-native'],
    // No comments or indentation: V8 keeps each loaded file's source as a string for the life of
    // the process, ~35% smaller so. And pure ASCII (esbuild escapes other characters in code): a
    // source with any other character, in a comment even (an ä too), is held as UTF-16, twice its
    // size. The packages' license comments go to <file>.LEGAL.txt beside each file, which names it.
    minifyWhitespace: true,
    legalComments: 'linked',
    // For stack traces and profiles (`node --enable-source-maps`, bench/profile.ts); never read otherwise.
    sourcemap: 'linked',
    sourcesContent: false,
    metafile: true,
    logLevel: 'warning',
    plugins: [plugin(outdir, entries)]
  })
  const cli = await build({ ...common({ cli: CLI_ENTRY }), splitting: true, format: 'esm', chunkNames: '[name]-[hash]', banner: { js: MODULE_BANNER } })
  const script = await build({
    ...common({ [SERVER_SCRIPT]: SERVER_SCRIPT_ENTRY }),
    entryNames: '[name]-[hash]',
    format: 'cjs',
    banner: { js: SCRIPT_BANNER },
    footer: { js: '})' }
  })
  const scriptFile = Object.keys(script.metafile!.outputs).find(output => output.endsWith('.js'))!
  // The server's entry on its own, so that it imports none of the CLI's chunks.
  const entry = await build({ ...common({ server: serverEntry(basename(scriptFile)) }), format: 'esm', banner: { js: MODULE_BANNER } })
  const meta = (key: 'inputs' | 'outputs'): object => Object.assign({}, ...[cli, entry, script].map(result => result.metafile![key]))
  writeFileSync(join(outdir, 'meta.json'), JSON.stringify({ inputs: meta('inputs'), outputs: meta('outputs') }))
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
    started = performance.now()
    const bytes = writeServerCodeCache(outdir)
    process.stdout.write(`code cache of the server script (${Math.round(bytes / 1024)} kB) after a training run in ${Math.round(performance.now() - started)} ms\n`)
  }
}
