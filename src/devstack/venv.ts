// A Python virtualenv holding Prefect and prefect-gcp, for the local Prefect server (tests, demo,
// benchmarks) and for the prefect CLI calls the tests make. Reused when healthy, built or repaired
// with pip otherwise.

import { spawn } from 'node:child_process'
import { access, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { lineSplitter } from './lines.ts'

export interface PrefectVenv {
  /** The virtualenv's root directory. */
  dir: string
  /** `<dir>/bin/python` */
  python: string
  /** `<dir>/bin` */
  bin: string
  /** `<dir>/bin/prefect` */
  prefect: string
}

export interface EnsurePrefectVenvOptions {
  /** Defaults to `$PUSHPOOL_VENV`, else `<repo>/.venv`. */
  dir?: string
  /** pip requirement specifiers; defaults to {@link DEFAULT_PREFECT_PACKAGES}. */
  packages?: string[]
  /** Receives pip's output line by line while installing. */
  onProgress?: (line: string) => void
}

/**
 * What the virtualenv needs. FastAPI is capped because from 0.155 `Body()` no longer accepts
 * `min_items`, which Prefect 3.8's server still passes, so `prefect server start` dies on import;
 * Prefect 3.9 itself declares `fastapi<0.151`, so we take the same bound. SQLAlchemy is capped
 * below 2.1 because with 2.1 Prefect 3.8's scheduler service fails in `_insert_scheduled_flow_runs`
 * ("Can't evaluate bulk DML statement"), so deployment schedules never produce runs; Prefect itself
 * only asks for `sqlalchemy>=2.0,<3`.
 */
export const DEFAULT_PREFECT_PACKAGES: readonly string[] = ['prefect==3.8.8', 'prefect-gcp==0.6.22', 'fastapi<0.151', 'sqlalchemy<2.1']

/**
 * The oldest Prefect release pushpool supports, which `npm run compat` tests beside the pinned one
 * (scripts/compat.ts says why 3.1.8). prefect-gcp 0.6.6 is the newest that installs beside it.
 * Prefect 3.1 imports importlib_metadata, which the opentelemetry-api it depends on has since
 * stopped pulling in. FastAPI and SQLAlchemy are capped as above.
 */
export const OLDEST_PREFECT_PACKAGES: readonly string[] = ['prefect==3.1.8', 'prefect-gcp==0.6.6', 'importlib-metadata', 'fastapi<0.151', 'sqlalchemy<2.1']

/** Where `npm run compat` keeps the oldest supported release's virtualenv, beside the default one. */
export function oldestVenvDir (): string {
  return join(REPO_ROOT, '.venv-prefect-oldest')
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

// Importing the server app (not just `prefect`) catches dependency drift that breaks only
// `prefect server start`, such as the FastAPI incompatibility above. The installed versions are
// held to the pins too: a virtualenv built before a pin was added (SQLAlchemy, say) imports fine
// and still misbehaves, so it is installed again.
const HEALTH_CHECK = 'import prefect, prefect_gcp, prefect.server.api.server'
const PINS_CHECK = [
  'import sys',
  'from importlib.metadata import version, PackageNotFoundError',
  'from pip._vendor.packaging.requirements import Requirement',
  'bad = []',
  'for spec in sys.argv[1:]:',
  '    req = Requirement(spec)',
  '    try:',
  '        installed = version(req.name)',
  '    except PackageNotFoundError:',
  '        bad.append(f"{req.name} is not installed")',
  '        continue',
  '    if not req.specifier.contains(installed, prereleases=True):',
  '        bad.append(f"{req.name} {installed} is installed, {spec} is wanted")',
  'print("\\n".join(bad))',
  'sys.exit(1 if bad else 0)'
].join('\n')

// Prefect 3 supports Python 3.10 and newer.
const MIN_PYTHON: readonly [number, number] = [3, 10]

const VERIFIED_MARKER = '.pushpool-verified'

const LOCK_STALE_MS = 15 * 60_000
const LOCK_UNWRITTEN_MS = 30_000
const LOCK_POLL_MS = 500

export function defaultVenvDir (): string {
  return process.env.PUSHPOOL_VENV || join(REPO_ROOT, '.venv')
}

export function venvPaths (dir: string): PrefectVenv {
  const bin = join(dir, 'bin')
  return { dir, bin, python: join(bin, 'python'), prefect: join(bin, 'prefect') }
}

export async function ensurePrefectVenv (opts: EnsurePrefectVenvOptions = {}): Promise<PrefectVenv> {
  const venv = venvPaths(resolve(opts.dir ?? defaultVenvDir()))
  const packages = opts.packages ?? [...DEFAULT_PREFECT_PACKAGES]
  if (await venvProblem(venv, packages) === undefined) return venv

  // Test files run in parallel and each may call this; only one of them may run pip.
  const release = await acquireInstallLock(venv.dir)
  try {
    if (await venvProblem(venv, packages) === undefined) return venv
    await installPrefect(venv, packages, opts.onProgress ?? (() => {}))
    const problem = await venvProblem(venv, packages)
    if (problem !== undefined) throw new Error(`Prefect virtualenv at ${venv.dir} is still unusable after pip install: ${problem}`)
    return venv
  } finally {
    await release()
  }
}

/** Resolves to what is wrong with the venv, or undefined when its versions meet the pins and Prefect's server can be imported. */
async function venvProblem (venv: PrefectVenv, packages: string[]): Promise<string | undefined> {
  for (const path of [venv.python, venv.prefect]) {
    if (!(await exists(path))) return `${path} is missing`
  }
  // The checks take ~5 s, and every test process asks; skip them while the pins and the installed
  // packages (site-packages' directory listing, hence its mtime) are unchanged since they passed.
  const marker = join(venv.dir, VERIFIED_MARKER)
  if (await readFile(marker, 'utf8').catch(() => '') === await sitePackagesFingerprint(venv.dir, packages)) return undefined
  const pins = await run(venv.python, ['-c', PINS_CHECK, ...packages], () => {})
  if (pins.code !== 0) return `the installed packages do not meet the pins:\n${pins.tail.join('\n')}`
  const result = await run(venv.python, ['-c', HEALTH_CHECK], () => {})
  if (result.code !== 0) return `\`python -c "${HEALTH_CHECK}"\` failed:\n${result.tail.join('\n')}`
  // Fingerprinted after the import, which may itself have created site-packages/__pycache__.
  await writeFile(marker, await sitePackagesFingerprint(venv.dir, packages))
  return undefined
}

async function sitePackagesFingerprint (dir: string, packages: string[]): Promise<string> {
  const lib = join(dir, 'lib')
  const parts: string[] = []
  for (const entry of (await readdir(lib)).filter((name) => name.startsWith('python')).sort()) {
    const sitePackages = join(lib, entry, 'site-packages')
    const info = await stat(sitePackages).catch(() => undefined)
    if (info) parts.push(`${sitePackages} ${info.mtimeMs}`)
  }
  return `${HEALTH_CHECK}\n${packages.join(' ')}\n${parts.join('\n')}\n`
}

async function installPrefect (venv: PrefectVenv, packages: string[], onProgress: (line: string) => void): Promise<void> {
  if (!(await exists(venv.python))) {
    const python3 = await findPython3()
    onProgress(`creating virtualenv ${venv.dir} with ${python3.version}`)
    const created = await run('python3', ['-m', 'venv', venv.dir], onProgress)
    if (created.code !== 0) {
      throw new Error(`\`python3 -m venv ${venv.dir}\` failed (exit ${created.code}). On Debian/Ubuntu ` +
        `install the python3-venv package.\n${created.tail.join('\n')}`)
    }
  }
  onProgress(`pip install ${packages.join(' ')}`)
  const pip = await run(venv.python,
    ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'off', ...packages],
    onProgress)
  if (pip.code !== 0) {
    throw new Error(`pip install ${packages.join(' ')} into ${venv.dir} failed (exit ${pip.code}):\n${pip.tail.join('\n')}`)
  }
}

async function findPython3 (): Promise<{ version: string }> {
  let result: RunResult
  try {
    result = await run('python3', ['--version'], () => {})
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`python3 was not found on PATH; Prefect needs Python ${MIN_PYTHON.join('.')} or newer ` +
        'to build the virtualenv (or point PUSHPOOL_VENV at an existing one)', { cause: err })
    }
    throw err
  }
  const version = result.tail.join(' ').trim()
  const match = /Python (\d+)\.(\d+)/.exec(version)
  if (result.code !== 0 || !match) throw new Error(`\`python3 --version\` failed: ${version}`)
  const [major, minor] = [Number(match[1]), Number(match[2])]
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
    throw new Error(`${version} is too old: Prefect needs Python ${MIN_PYTHON.join('.')} or newer`)
  }
  return { version }
}

interface RunResult { code: number | null, tail: string[] }

/** Runs a command, streaming each output line to `onLine` and keeping the last 40 for errors. */
function run (command: string, args: string[], onLine: (line: string) => void): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PIP_NO_INPUT: '1' } })
    const tail: string[] = []
    const onChunk = lineSplitter((line) => {
      tail.push(line)
      if (tail.length > 40) tail.shift()
      onLine(line)
    })
    child.stdout.on('data', onChunk)
    child.stderr.on('data', onChunk)
    child.once('error', reject)
    child.once('close', (code) => resolvePromise({ code, tail }))
  })
}


/**
 * A lock directory beside the virtualenv, created atomically by mkdir. A lock whose owner process
 * is gone, or that is older than an install could take, is broken so a crash cannot wedge later runs.
 */
async function acquireInstallLock (venvDir: string): Promise<() => Promise<void>> {
  const lockDir = `${venvDir}.install-lock`
  const ownerFile = join(lockDir, 'owner.json')
  await mkdir(dirname(venvDir), { recursive: true })
  for (;;) {
    try {
      await mkdir(lockDir)
      await writeFile(ownerFile, JSON.stringify({ pid: process.pid, since: Date.now() }))
      return () => rm(lockDir, { recursive: true, force: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    if (await lockIsStale(lockDir, ownerFile)) {
      await rm(lockDir, { recursive: true, force: true })
      continue
    }
    await new Promise((r) => setTimeout(r, LOCK_POLL_MS))
  }
}

async function lockIsStale (lockDir: string, ownerFile: string): Promise<boolean> {
  let owner: { pid: number, since: number }
  try {
    owner = JSON.parse(await readFile(ownerFile, 'utf8'))
  } catch {
    // Either the owner is between mkdir and writeFile, or it died there.
    try {
      return Date.now() - (await stat(lockDir)).mtimeMs > LOCK_UNWRITTEN_MS
    } catch {
      return false
    }
  }
  if (Date.now() - owner.since > LOCK_STALE_MS) return true
  try {
    process.kill(owner.pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}
