// loadScript runs a classic script shaped as the server script is (a function expression given
// require, module and its folder) and says whether V8 took its code cache. Each load is a new
// process, as each start of the server is: within one process V8 finds a script it compiled before
// in its own cache and never reads the code cache it was given.
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const SCRIPT_MODULE = pathToFileURL(join(import.meta.dirname, '../../src/artifact/script.ts')).href

// A function that runs only when called: the cache taken after the call holds its compiled code.
const SOURCE = `(function (require, module, __pushpoolDist) {
  module.exports.double = function double (n) { return n * 2 }
  module.exports.dist = __pushpoolDist
  module.exports.sep = require('node:path').sep
})`

interface Loaded {
  codeCache: string
  double: number
  dist: string
  sep: string
}

/** Loads `file` in a new process with `cacheFile`; with `writeCache`, writes the cache it takes after running. */
function loadInChild (file: string, cacheFile: string | null, writeCache?: string): Loaded {
  const code = `
    import { writeFileSync } from 'node:fs'
    import { loadScript } from ${JSON.stringify(SCRIPT_MODULE)}
    const { exports, script, codeCache } = loadScript(${JSON.stringify(file)}, ${JSON.stringify(cacheFile)})
    const loaded = { codeCache, double: exports.double(21), dist: exports.dist, sep: exports.sep }
    ${writeCache !== undefined ? `writeFileSync(${JSON.stringify(writeCache)}, script.createCachedData())` : ''}
    process.stdout.write(JSON.stringify(loaded))`
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '--eval', code], { encoding: 'utf8' })) as Loaded
}

function folder (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-script-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('a script without a cache runs, and says the cache is absent; with the cache it took after running, accepted', async t => {
  const dir = folder(t)
  const file = join(dir, 'bundle.js')
  const cacheFile = join(dir, 'bundle.cache')
  writeFileSync(file, SOURCE)

  const first = loadInChild(file, cacheFile, cacheFile)
  t.same(first, { codeCache: 'absent', double: 42, dist: dir, sep: '/' }, 'it runs, given its folder and a require of Node\'s modules')
  t.same(loadInChild(file, cacheFile), { ...first, codeCache: 'accepted' }, 'and runs the same from the cache it left')
})

t.test('a cache that is not the script\'s is rejected, and the script runs all the same', async t => {
  const dir = folder(t)
  const file = join(dir, 'bundle.js')
  const cacheFile = join(dir, 'bundle.cache')
  writeFileSync(file, SOURCE)
  const other = join(dir, 'other.js')
  writeFileSync(other, SOURCE.replace('n * 2', 'n + n + 0'))
  loadInChild(other, null, cacheFile)

  t.same(loadInChild(file, cacheFile), { codeCache: 'rejected', double: 42, dist: dir, sep: '/' }, 'another script\'s')
  writeFileSync(cacheFile, 'not a V8 code cache')
  t.equal(loadInChild(file, cacheFile).codeCache, 'rejected', 'a file of something else')
})

t.test('without a cache file named, the cache is disabled; a cache that cannot be read is an error', async t => {
  const dir = folder(t)
  const file = join(dir, 'bundle.js')
  writeFileSync(file, SOURCE)
  t.equal(loadInChild(file, null).codeCache, 'disabled')
  t.throws(() => loadInChild(file, dir), /EISDIR/, 'a folder in its place is not taken for a missing cache')
  t.throws(() => loadInChild(join(dir, 'missing.js'), null), /ENOENT/, 'a missing script is an error')
})
