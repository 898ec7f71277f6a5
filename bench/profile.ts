// Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: the top functions by
// self time and by inclusive time (each sample counted once per function on its stack), and self
// time per package (node_modules/<pkg>) or per pushpool file. This is the evidence a missed
// target's note cites.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { REPO } from './pushpool-process.ts'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export interface Frame { frame: string, ms: number, pct: number }

export interface ProfileSummary {
  file: string
  total_ms: number
  /** Self time by what the code does (leaf frame classified by file and name). */
  by_activity: Frame[]
  top_self: Frame[]
  top_inclusive_src: Frame[]
  by_package: Frame[]
}

/** The newest .cpuprofile in a directory. */
export function newestProfile (dir: string): string {
  const files = readdirSync(dir).filter(f => f.endsWith('.cpuprofile')).sort()
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`)
  return join(dir, files[files.length - 1])
}

function where (url: string): string {
  if (url === '') return ''
  const path = url.replace(/^file:\/\//, '')
  const nm = path.lastIndexOf('/node_modules/')
  if (nm !== -1) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/')
    return `node_modules/${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`
  }
  if (path.startsWith(REPO)) return path.slice(REPO.length + 1)
  if (path.startsWith('node:')) return path
  return path
}

/** pushpool's own code: src/, or its compiled copy under bench/tmp/dist/. */
const isPushpool = (url: string): boolean =>
  !url.includes('/node_modules/') && (url.includes(`${REPO}/src/`) || url.includes(`${REPO}/bench/tmp/dist/`))

const key = (f: CallFrame): string => {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName
  return f.url === '' ? name : `${name} ${where(f.url)}:${f.lineNumber + 1}`
}

/** Only the samples taken between `fromMs` and `untilMs` after the profile's start (e.g. until ready). */
export function summarizeProfile (file: string, top = 12, untilMs = Infinity, fromMs = 0): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const original = sourceMapper()
  for (const node of profile.nodes) node.callFrame = original(node.callFrame)
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const pkg = new Map<string, number>()
  const activity = new Map<string, number>()
  let total = 0
  let elapsed = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000
    elapsed += ms
    if (elapsed > untilMs) break
    if (elapsed < fromMs) continue
    const node = byId.get(profile.samples[i])
    if (node === undefined) continue
    total += ms
    self.set(key(node.callFrame), (self.get(key(node.callFrame)) ?? 0) + ms)
    const p = node.callFrame.url === '' ? node.callFrame.functionName : where(node.callFrame.url)
    const group = p.startsWith('node:') ? 'node: (built-in modules)' : p
    pkg.set(group, (pkg.get(group) ?? 0) + ms)
    const what = classify(node.callFrame)
    activity.set(what, (activity.get(what) ?? 0) + ms)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame
      if (frame === undefined || !isPushpool(frame.url)) continue
      const k = key(frame)
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + ms)
    }
  }
  const rank = (m: Map<string, number>, n = top): Frame[] => [...m.entries()]
    .sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([frame, ms]) => ({ frame, ms: Math.round(ms * 10) / 10, pct: Math.round(ms / total * 1000) / 10 }))
  return { file, total_ms: Math.round(total), by_activity: rank(activity, 20), top_self: rank(self), top_inclusive_src: rank(inclusive), by_package: rank(pkg) }
}

/**
 * Maps frames in a bundled file (the production artifact, built with linked source maps) back to
 * the file and line they were bundled from, so the figures name packages and pushpool files rather
 * than chunks.
 */
function sourceMapper (): (frame: CallFrame) => CallFrame {
  const maps = new Map<string, SourceMap | null>()
  const mapOf = (url: string): SourceMap | null => {
    let map = maps.get(url)
    if (map === undefined) {
      const path = `${fileURLToPath(url)}.map`
      map = existsSync(path) ? new SourceMap(JSON.parse(readFileSync(path, 'utf8'))) : null
      maps.set(url, map)
    }
    return map
  }
  return frame => {
    if (!frame.url.startsWith('file://') || !frame.url.endsWith('.js')) return frame
    const map = mapOf(frame.url)
    const entry = map?.findEntry(frame.lineNumber, frame.columnNumber)
    if (entry === undefined || !('originalSource' in entry)) return frame
    const source = resolve(dirname(fileURLToPath(frame.url)), entry.originalSource.replace(/^file:\/\//, ''))
    return { ...frame, url: pathToFileURL(source).href, lineNumber: entry.originalLine, columnNumber: entry.originalColumn }
  }
}

// Leaf frames classified by what they do, first match wins. Native calls show as their own
// name (e.g. writev), so socket and file writes are told apart by name.
const ACTIVITIES: Array<[string, (url: string, name: string) => boolean]> = [
  ['idle (waiting for peers)', (u, n) => n === '(idle)'],
  ['garbage collection', (u, n) => n === '(garbage collector)'],
  ['SQLite store (node:sqlite, incl. commits)', u => /\/(src|bench\/tmp\/dist)\/store\//.test(u)],
  ['Prefect HTTP client (fetch/undici, AbortSignal timers, web streams)', (u, n) => u.includes('internal/deps/undici') || /node:internal\/(abort_controller|per_context\/domexception|webstreams)/.test(u) || n === 'set TextDecoder'],
  ['structuredClone (template copies)', (u, n) => n === 'structuredClone'],
  ['gRPC + protobuf (Google client)', u => /node_modules\/(@grpc|protobufjs|@protobufjs|google-gax|@google-cloud|proto3-json-serializer)/.test(u)],
  ['socket and file writes (native)', (u, n) => u === '' && /^(writev|writeLatin1String|writeUtf8String|writeBuffer|writeString|writeSync)$/.test(n)],
  ['template rendering + validation (src/prefect)', u => /\/(src|bench\/tmp\/dist)\/prefect\//.test(u)],
  ['logging (pino)', u => /node_modules\/(pino|sonic-boom|@pinojs|pino-std-serializers|thread-stream)/.test(u)],
  ['Fastify (routing, schemas, serialisation)', u => /node_modules\/(fastify|@fastify|find-my-way|avvio|fast-json-stringify|light-my-request|fast-querystring|secure-json-parse)/.test(u)],
  ['JSON schema (ajv)', u => /node_modules\/(ajv|ajv-formats|fast-uri|json-schema-traverse)/.test(u)],
  // In the artifact, esbuild's wrapper that runs a bundled CommonJS module (its own self time is
  // mostly the lazy compilation of the module's body, which V8 charges to the caller).
  ['module loading and compiling', (u, n) => /modules\/(cjs|esm)|amaro|wasm:\/\//.test(u) || /^(wrapSafe|compileFunctionForCJSLoader|compileSourceTextModule|ModuleWrap|Module|link|internalModuleStat|readFileUtf8|realpathSync|lstat)$/.test(n) ||
    (/\/bench\/tmp\/dist\//.test(u) && /^__(require|init)\d*$/.test(n))],
  ['node:http server and net', u => /node:(_http|http|net|internal\/(http|stream_base|streams|net))/.test(u)],
  ['other pushpool code', u => /\/(src|bench\/tmp\/dist)\//.test(u)],
  ['other node internals', u => u.startsWith('node:')],
  ['(program)', (u, n) => n === '(program)'],
]

function classify (frame: CallFrame): string {
  for (const [label, test] of ACTIVITIES) if (test(frame.url, frame.functionName)) return label
  return frame.url === '' ? 'other native' : `other: ${where(frame.url)}`
}
