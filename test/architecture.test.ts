// The code held to docs/architecture.md: every import points down its layer table (or stays in its
// room), no import cycle exists, and the page's transition table is the one in src/store. Static
// analysis of the source text: no peer, no build.
import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TRANSITIONS } from '../src/store/transitions.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const SRC = join(ROOT, 'src')
const page = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8')

/** The rows of the first markdown table under `heading`, as arrays of cell text. */
function table (heading: string): string[][] {
  const section = page.split(/^## /m).find(s => s.startsWith(`${heading}\n`))
  if (section === undefined) throw new Error(`docs/architecture.md has no "## ${heading}" section`)
  return section.split('\n').filter(line => line.startsWith('|')).slice(2)
    .map(line => line.replace(/\\\|/g, '\u0000').split('|').slice(1, -1).map(cell => cell.trim().replace(/\u0000/g, '|')))
}

interface Room { floor: number, name: string, paths: string[] }

const rooms: Room[] = table('Layers').flatMap(([floor, cell]) => cell.split(', ').map(room => ({
  floor: Number(floor),
  name: room.replace(/`/g, ''),
  paths: room.replace(/`/g, '').split(' + ')
})))

function roomOf (file: string): Room | undefined {
  return rooms.find(room => room.paths.some(path => path.endsWith('/') ? file.startsWith(path) : file === path))
}

function sourceFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : []
  })
}

/** Relative imports of a file (static, re-exports and dynamic), as paths under src/. */
function importsOf (file: string): string[] {
  const text = readFileSync(join(SRC, file), 'utf8')
  const specifiers = [...text.matchAll(/(?:from\s+|import\s*\(\s*|^import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)].map(m => m[1])
  return specifiers.map(s => normalize(join(dirname(file), s))).filter(p => p.endsWith('.ts'))
}

/** Why `from` may not import `to`, or null when it may. */
function violation (from: string, to: string): string | null {
  const a = roomOf(from)
  const b = roomOf(to)
  if (a === undefined || b === undefined) return `${a === undefined ? from : to} is in no room of the layer table`
  if (a === b) return null
  if (b.floor > a.floor) return null
  return b.floor === a.floor
    ? `${from} (${a.name}) imports ${to} (${b.name}), another room of floor ${a.floor}`
    : `${from} (floor ${a.floor}) imports ${to} (floor ${b.floor}), which is above it`
}

const files = sourceFiles(SRC)
const graph = new Map(files.map(file => [file, importsOf(file)]))

t.test('the layer table is well formed and places every source file', async t => {
  t.ok(rooms.length > 10, 'the table has rooms')
  t.same(rooms.filter(r => !Number.isInteger(r.floor)).map(r => r.name), [], 'every row has a floor number')
  const homeless = files.filter(file => roomOf(file) === undefined)
  t.same(homeless, [], 'every file under src/ is in a room (add new folders to docs/architecture.md)')
  const doubled = files.filter(file => rooms.filter(room => room.paths.some(p => p.endsWith('/') ? file.startsWith(p) : file === p)).length > 1)
  t.same(doubled, [], 'no file is in two rooms')
})

t.test('the rule refuses an import upwards or sideways (so the check below can fail)', async t => {
  t.equal(violation('store/sqlite.ts', 'dispatch/dispatcher.ts'), 'store/sqlite.ts (floor 9) imports dispatch/dispatcher.ts (floor 6), which is above it')
  t.match(violation('prefect/client.ts', 'store/store.ts'), /another room of floor 9/)
  t.equal(violation('dispatch/dispatcher.ts', 'store/store.ts'), null)
  t.equal(violation('dispatch/dispatcher.ts', 'dispatch/prepare.ts'), null, 'within a room')
  t.equal(violation('openapi.ts', 'openapi-schemas.ts'), null, 'a room joined with +')
})

t.test('every import points down the layers or stays in its room', async t => {
  const problems = [...graph].flatMap(([from, targets]) => targets.map(to => violation(from, to)).filter(p => p !== null))
  t.same(problems, [])
})

t.test('no import cycle', async t => {
  // Depth-first search; a file met again while still on the path closes a cycle.
  const cycles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (file: string): void => {
    state.set(file, 'open')
    path.push(file)
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') cycles.push([...path.slice(path.indexOf(next)), next].join(' → '))
      else if (state.get(next) === undefined && graph.has(next)) visit(next)
    }
    path.pop()
    state.set(file, 'done')
  }
  for (const file of files) if (state.get(file) === undefined) visit(file)
  t.same(cycles, [])
})

t.test('the page\'s transition table is the code\'s', async t => {
  const documented = Object.fromEntries(table('Dispatch').map(([name, from, to]) => [
    name.replace(/`/g, ''), { from: from.split(', '), to: to.split(', ') }
  ]))
  const coded = Object.fromEntries(Object.entries(TRANSITIONS).map(([name, { from, to }]) => [name, { from: [...from], to: [...to] }]))
  t.same(documented, coded)
})
