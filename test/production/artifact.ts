// Temporary folders for the production tests, removed when the test ends: one for a server's files,
// and the production artifact built (scripts/build.ts) beside the repository's node_modules, as
// dist/ is in the image.
import type { Test } from 'tap'
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { buildArtifact } from '../../scripts/build.ts'

const REPO = fileURLToPath(new URL('../..', import.meta.url))

export function temporaryDir (t: Test, prefix: string, parent = tmpdir()): string {
  const dir = mkdtempSync(join(parent, prefix))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** The artifact, without its caches (which only make it faster), under dist/ (ignored by git). */
export async function builtArtifact (t: Test): Promise<string> {
  mkdirSync(join(REPO, 'dist'), { recursive: true })
  const dist = temporaryDir(t, 'test-', join(REPO, 'dist'))
  await buildArtifact(dist)
  return dist
}

/**
 * The artifact's chunk esbuild named after `name` (`<name>-<hash>.js`), imported; undefined if there
 * is none. The chunks are the CLI's ES modules; the server script bundles the same modules, made by
 * the same build plugin.
 */
export async function importChunk<T> (dist: string, name: string): Promise<T | undefined> {
  const file = readdirSync(dist).find(entry => entry.startsWith(`${name}-`) && entry.endsWith('.js'))
  return file === undefined ? undefined : await import(pathToFileURL(join(dist, file)).href) as T
}
