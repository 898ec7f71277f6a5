// The production artifact, built as `npm run build` builds it (scripts/build.ts: the server script
// and its trained V8 code cache) into bench/tmp/dist, so the repo's own dist/ is left alone; and the
// environment the Dockerfile's image runs it with (its last stage's ENV), so the figures are the image's.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseDockerfile, parseEnv } from '../test/production/dockerfile-replay.ts'
import { REPO, TMP } from './pushpool-process.ts'

export interface Build {
  /** Entry relative to the repo, e.g. bench/tmp/dist/server.js. */
  entry: string
  ms: number
  /** The image's ENV (NODE_ENV, NODE_OPTIONS, …), for running the artifact as the image does. */
  env: Record<string, string>
}

export function buildService (): Build {
  const outDir = join(TMP, 'dist')
  const started = performance.now()
  execFileSync(process.execPath, [join(REPO, 'scripts', 'build.ts'), '--outdir', outDir], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (!existsSync(join(outDir, 'server.js'))) throw new Error('scripts/build.ts produced no server.js')
  return { entry: 'bench/tmp/dist/server.js', ms: performance.now() - started, env: imageEnv() }
}

function imageEnv (): Record<string, string> {
  const final = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8')).at(-1)
  return Object.assign({}, ...(final?.instructions ?? []).filter(i => i.keyword === 'ENV').map(i => parseEnv(i.args))) as Record<string, string>
}

/**
 * The deployed concurrency: cloudbuild.yaml's _CONCURRENCY, which the deploy gives Cloud Run as
 * --concurrency and pushpool as PUSHPOOL_MAX_IN_FLIGHT.
 */
export function deployedConcurrency (): number {
  const match = /^\s*_CONCURRENCY:\s*'?(\d+)'?\s*$/m.exec(readFileSync(join(REPO, 'cloudbuild.yaml'), 'utf8'))
  if (match === null) throw new Error('cloudbuild.yaml has no _CONCURRENCY substitution')
  return Number(match[1])
}
