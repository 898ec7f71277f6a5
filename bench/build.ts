// The compiled service, as it ships (`npm run build` → `node dist/server.js` in the Dockerfile),
// built into bench/tmp/dist so the repo's own dist/ is left alone. openapi.yaml goes beside it,
// where src/openapi.ts looks for it (one directory up from the compiled file).
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { REPO, TMP } from './pushpool-process.ts'

export interface Build {
  /** Entry relative to the repo, e.g. bench/tmp/dist/server.js. */
  entry: string
  ms: number
  /** tsc's complaints, if it had any (it still emits). */
  diagnostics: string
}

export function buildService (): Build {
  const outDir = join(TMP, 'dist')
  rmSync(outDir, { recursive: true, force: true })
  const started = performance.now()
  let diagnostics = ''
  try {
    execFileSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir, '--sourceMap', 'false'],
      { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    // tsc exits non-zero on type errors but emits anyway (noEmitOnError is off).
    diagnostics = String((err as { stdout?: string }).stdout ?? err).slice(0, 2000)
  }
  if (!existsSync(join(outDir, 'server.js'))) throw new Error(`tsc produced no server.js:\n${diagnostics}`)
  copyFileSync(join(REPO, 'openapi.yaml'), join(TMP, 'openapi.yaml'))
  return { entry: 'bench/tmp/dist/server.js', ms: performance.now() - started, diagnostics }
}
