// What the figures were measured on: machine, versions, commit and date.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { REPO } from './pushpool-process.ts'

export interface Machine {
  date: string
  cpu: string
  cores: number
  memory_gb: number
  kernel: string
  node: string
  packages: Record<string, string>
  python_packages: Record<string, string>
  commit: string
  /** Uncommitted changes in the work tree when the bench ran (other engineers work in it too). */
  dirty_files: number
  load_average_at_start: number[]
}

function packageVersion (name: string): string {
  try {
    return JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

function git (args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: REPO, encoding: 'utf8' }).trim()
  } catch {
    return ''
  }
}

export function describeMachine (python: string | null): Machine {
  let pythonPackages: Record<string, string> = {}
  if (python !== null) {
    try {
      const script = 'import importlib.metadata as m, json, sys; print(json.dumps({p: m.version(p) for p in sys.argv[1:]} | {"python": sys.version.split()[0]}))'
      pythonPackages = JSON.parse(execFileSync(python, ['-c', script, 'prefect', 'prefect-gcp', 'sqlalchemy', 'fastapi'], { encoding: 'utf8' }))
    } catch { /* reported as empty */ }
  }
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gb: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    kernel: release(),
    node: process.version,
    packages: Object.fromEntries(['fastify', 'pino', '@google-cloud/run', 'google-gax', '@grpc/grpc-js', 'protobufjs', 'ajv'].map(p => [p, packageVersion(p)])),
    python_packages: pythonPackages,
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty_files: git(['status', '--porcelain']).split('\n').filter(l => l.trim() !== '').length,
    load_average_at_start: loadavg().map(v => Math.round(v * 100) / 100)
  }
}
