// Replays a Dockerfile's build without a container engine: each stage gets a directory standing for
// its root filesystem; COPY copies from the build context (as .dockerignore filters it) or from an
// earlier stage; RUN runs under /bin/sh in the stage's WORKDIR with the stage's ENV and this
// machine's Node first on PATH. An instruction it does not know is an error, so the Dockerfile
// cannot grow a step that the replay silently skips.
import { spawn } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { basename, dirname, join, posix, relative } from 'node:path'

export interface Instruction {
  keyword: string
  args: string
  line: number
}

export interface Stage {
  image: string
  name: string | null
  instructions: Instruction[]
}

export interface BuiltStage {
  stage: Stage
  /** The directory standing for the stage's `/`. */
  root: string
  /** WORKDIR as the container sees it, e.g. `/app`. */
  workdir: string
  env: Record<string, string>
  user: string | null
  /** CMD in exec form, or null when the stage sets none. */
  cmd: string[] | null
}

const NO_OPS = new Set(['EXPOSE', 'LABEL'])
const KNOWN = new Set(['FROM', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'USER', 'CMD', ...NO_OPS])

export function parseDockerfile (text: string): Stage[] {
  const stages: Stage[] = []
  let pending = ''
  let startLine = 0
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (pending === '' && (line === '' || line.startsWith('#'))) continue
    if (pending === '') startLine = index + 1
    if (line.endsWith('\\')) { pending += `${line.slice(0, -1)} `; continue }
    const full = pending + line
    pending = ''
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(full) ?? []
    const instruction = { keyword: keyword.toUpperCase(), args: args.trim(), line: startLine }
    if (!KNOWN.has(instruction.keyword)) throw new Error(`line ${startLine}: the replay does not know ${instruction.keyword}`)
    if (instruction.keyword === 'FROM') {
      const [image, as, name] = instruction.args.split(/\s+/)
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : null, instructions: [] })
      continue
    }
    const stage = stages.at(-1)
    if (stage === undefined) throw new Error(`line ${startLine}: ${instruction.keyword} before any FROM`)
    stage.instructions.push(instruction)
  }
  return stages
}

/** Whether a context path (relative, `/`-separated) is left out of the build by .dockerignore. */
export function dockerignore (text: string): (path: string) => boolean {
  const rules = text.split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#')).map(l => {
    const exclude = !l.startsWith('!')
    const pattern = posix.normalize((exclude ? l : l.slice(1)).replace(/^\/+/, ''))
    return { exclude, regex: globToRegex(pattern) }
  })
  return path => {
    // As Docker does: a rule matches a path or any of its parents, and the last matching rule wins.
    const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'))
    let excluded = false
    for (const rule of rules) {
      if (prefixes.some(p => rule.regex.test(p))) excluded = rule.exclude
    }
    return excluded
  }
}

function globToRegex (glob: string): RegExp {
  let source = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*' && glob[i + 1] === '*') { source += '.*'; i++ } else if (c === '*') source += '[^/]*'
    else if (c === '?') source += '[^/]'
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${source}$`)
}

export interface ReplayOptions {
  context: string
  ignored: (path: string) => boolean
  /** Where the stage roots are made. */
  workRoot: string
  /** Extra environment for RUN steps (e.g. npm settings); the stage's ENV wins over it. */
  runEnv?: Record<string, string>
  onStep?: (step: string, ms: number) => void
}

export async function replayBuild (stages: Stage[], options: ReplayOptions): Promise<BuiltStage[]> {
  const built: BuiltStage[] = []
  for (const [index, stage] of stages.entries()) {
    const root = mkdtempSync(join(options.workRoot, `stage-${index}-`))
    // As an image's /: other users (a build step run as the image's user) can look inside.
    chmodSync(root, 0o755)
    const state: BuiltStage = { stage, root, workdir: '/', env: {}, user: null, cmd: null }
    const inRoot = (containerPath: string): string => join(root, posix.resolve(state.workdir, containerPath))
    for (const { keyword, args, line } of stage.instructions) {
      const started = Date.now()
      const where = `stage ${stage.name ?? index}, line ${line}`
      switch (keyword) {
        case 'WORKDIR':
          state.workdir = posix.resolve(state.workdir, args)
          mkdirSync(inRoot('.'), { recursive: true })
          break
        case 'ENV':
          Object.assign(state.env, parseEnv(args))
          break
        case 'USER':
          state.user = args
          break
        case 'CMD':
          state.cmd = parseExecForm(args, where)
          break
        case 'COPY':
          copy(args, where, inRoot, built, options)
          break
        case 'RUN':
          await run(args, where, inRoot('.'), { ...runEnvironment(), ...options.runEnv, ...state.env })
          break
        default:
          if (!NO_OPS.has(keyword)) throw new Error(`${where}: ${keyword} is parsed but not replayed`)
      }
      options.onStep?.(`${where}: ${keyword} ${args}`, Date.now() - started)
    }
    built.push(state)
  }
  return built
}

export function parseEnv (args: string): Record<string, string> {
  const unquote = (v: string): string => v.replace(/^"(.*)"$/, '$1')
  // The legacy form, `ENV KEY value with spaces`, sets one variable.
  if (!/^[^\s=]+=/.test(args)) {
    const [key, ...value] = args.split(/\s+/)
    return { [key]: unquote(value.join(' ')) }
  }
  // `KEY=value KEY2="a value with spaces"`: a double-quoted value keeps its spaces.
  return Object.fromEntries([...args.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map(([, key, value]) => [key, unquote(value)]))
}

function parseExecForm (args: string, where: string): string[] {
  try {
    const parsed: unknown = JSON.parse(args)
    if (Array.isArray(parsed) && parsed.every(a => typeof a === 'string')) return parsed
  } catch {}
  // The shell form makes /bin/sh PID 1, and sh does not pass SIGTERM on to the server.
  throw new Error(`${where}: CMD must be in exec form (a JSON array), got ${args}`)
}

function copy (args: string, where: string, inRoot: (p: string) => string, built: BuiltStage[], options: ReplayOptions): void {
  const words = args.split(/\s+/)
  const flags = Object.fromEntries(words.filter(w => w.startsWith('--')).map(w => {
    const [name, value] = w.slice(2).split('=')
    return [name, value ?? '']
  }))
  const unknown = Object.keys(flags).filter(f => !['from', 'chown', 'chmod', 'link'].includes(f))
  if (unknown.length > 0) throw new Error(`${where}: COPY flags the replay does not know: ${unknown.join(', ')}`)
  const paths = words.filter(w => !w.startsWith('--'))
  const dest = paths.pop()
  if (dest === undefined || paths.length === 0) throw new Error(`${where}: COPY needs a source and a destination`)
  const intoDirectory = dest.endsWith('/') || paths.length > 1
  const target = inRoot(dest)

  let sourceOf: (src: string) => string
  let keep: (source: string) => boolean = () => true
  if (flags.from !== undefined) {
    const from = built.find((b, i) => b.stage.name === flags.from || String(i) === flags.from)
    if (from === undefined) throw new Error(`${where}: COPY --from=${flags.from} names no earlier stage`)
    sourceOf = src => join(from.root, posix.resolve('/', src))
  } else {
    sourceOf = src => join(options.context, posix.normalize(src))
    keep = source => !options.ignored(relative(options.context, source).split('\\').join('/'))
  }
  for (const src of paths) {
    const source = sourceOf(src)
    if (!existsSync(source) || !keep(source)) throw new Error(`${where}: COPY ${src}: not found in the build context (or excluded by .dockerignore)`)
    // A directory's contents are copied, not the directory itself, as Docker does.
    const destination = statSync(source).isDirectory() || !intoDirectory ? target : join(target, basename(source))
    mkdirSync(dirname(destination), { recursive: true })
    cpSync(source, destination, { recursive: true, filter: keep, verbatimSymlinks: true })
  }
}

// What a RUN step sees besides the stage's ENV: the image would have Node on PATH, and npm's cache
// lives in HOME (so a warm cache makes `npm ci` fast).
function runEnvironment (): Record<string, string> {
  return {
    PATH: [dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'),
    HOME: homedir()
  }
}

function run (command: string, where: string, cwd: string, env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const collect = (chunk: Buffer): void => { output += chunk.toString('utf8') }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    child.once('error', reject)
    child.once('close', code => {
      if (code === 0) resolve()
      else reject(new Error(`${where}: RUN ${command} exited ${code}:\n${output.slice(-4000)}`))
    })
  })
}
