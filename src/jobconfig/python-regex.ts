// Python's `re` for JSON Schema `pattern`: Prefect's server validates job variables with the
// `jsonschema` package, which tests a pattern with `re.search(pattern, value)` and checks the
// `regex` format with `re.compile`. JavaScript's RegExp reads the same text differently in ways
// that change verdicts: `$` also matches before a final newline in Python, `\d` `\w` `\s` `\b`
// are Unicode-aware there, `.` matches "\r", `{` and `]` may be literals, `(?P<name>…)`,
// `(?i)`, `\Z`, atomic groups and possessive quantifiers exist. This is a port of Python 3.11's
// parser (re/_parser.py): it refuses exactly the patterns `re.compile` refuses, and writes the
// rest as a JavaScript RegExp (`v` flag) that matches where Python's would.

/** `re.compile` refuses the pattern. */
export class PythonRegexError extends Error {
  override name = 'PythonRegexError'
}

/** A valid Python pattern that no JavaScript RegExp expresses (a conditional group). */
export class UntranslatableRegexError extends Error {
  override name = 'UntranslatableRegexError'
}

const MAXREPEAT = 4294967295
const MAXGROUPS = 1073741823

interface Flags { i: boolean, m: boolean, s: boolean, x: boolean, a: boolean, u: boolean, t: boolean }
type FlagName = keyof Flags
const FLAG_LETTERS = new Set(['i', 'L', 'm', 's', 'x', 'a', 't', 'u'])

type Category = 'd' | 'D' | 's' | 'S' | 'w' | 'W'
type SetItem = { kind: 'literal', code: number } | { kind: 'range', lo: number, hi: number } | { kind: 'category', name: Category }
type At = 'beginning' | 'end' | 'beginningString' | 'endString' | 'boundary' | 'nonBoundary'

type Node =
  | { kind: 'literal', code: number }
  | { kind: 'any' }
  | { kind: 'set', negate: boolean, items: SetItem[] }
  | { kind: 'at', at: At }
  | { kind: 'repeat', min: number, max: number, mode: 'greedy' | 'lazy' | 'possessive', item: Node[] }
  | { kind: 'group', group: number | null, add: Partial<Flags>, remove: Partial<Flags>, body: Node[] }
  | { kind: 'atomic', body: Node[] }
  | { kind: 'assert', behind: boolean, negate: boolean, body: Node[] }
  | { kind: 'groupref', group: number }
  | { kind: 'conditional' }
  | { kind: 'branch', alternatives: Node[][] }

const ESCAPES: Record<string, number> = { '\\a': 7, '\\b': 8, '\\f': 12, '\\n': 10, '\\r': 13, '\\t': 9, '\\v': 11, '\\\\': 92 }
const CATEGORY_ESCAPES: Record<string, Node> = {
  '\\A': { kind: 'at', at: 'beginningString' },
  '\\b': { kind: 'at', at: 'boundary' },
  '\\B': { kind: 'at', at: 'nonBoundary' },
  '\\Z': { kind: 'at', at: 'endString' },
  '\\d': { kind: 'set', negate: false, items: [{ kind: 'category', name: 'd' }] },
  '\\D': { kind: 'set', negate: false, items: [{ kind: 'category', name: 'D' }] },
  '\\s': { kind: 'set', negate: false, items: [{ kind: 'category', name: 's' }] },
  '\\S': { kind: 'set', negate: false, items: [{ kind: 'category', name: 'S' }] },
  '\\w': { kind: 'set', negate: false, items: [{ kind: 'category', name: 'w' }] },
  '\\W': { kind: 'set', negate: false, items: [{ kind: 'category', name: 'W' }] }
}
const DIGITS = /^[0-9]$/
const OCTAL = /^[0-7]$/
const HEX = /^[0-9a-fA-F]$/
const ASCII_LETTER = /^[a-zA-Z]$/
const VERBOSE_SPACE = new Set([' ', '\t', '\n', '\r', '\v', '\f'])
const SPECIAL = new Set([...'.\\[{()*+?^$|'])

/** Python's tokenizer: a backslash and the character after it are one token. */
class Source {
  private readonly chars: string[]
  index = 0
  next: string | null = null

  constructor (pattern: string) {
    this.chars = [...pattern]
    this.advance()
  }

  private advance (): void {
    let index = this.index
    if (index >= this.chars.length) { this.next = null; return }
    let char = this.chars[index]
    if (char === '\\') {
      index++
      if (index >= this.chars.length) throw new PythonRegexError('bad escape (end of pattern)')
      char += this.chars[index]
    }
    this.index = index + 1
    this.next = char
  }

  tell (): number {
    return this.index - (this.next === null ? 0 : [...this.next].length)
  }

  seek (index: number): void {
    this.index = index
    this.advance()
  }

  match (char: string): boolean {
    if (char !== this.next) return false
    this.advance()
    return true
  }

  get (): string | null {
    const token = this.next
    this.advance()
    return token
  }

  getWhile (count: number, accept: RegExp): string {
    let result = ''
    for (let n = 0; n < count; n++) {
      const token = this.next
      if (token === null || !accept.test(token)) break
      result += token
      this.advance()
    }
    return result
  }

  getUntil (terminator: string, name: string): string {
    let result = ''
    for (;;) {
      const token = this.next
      this.advance()
      if (token === null) throw new PythonRegexError(result === '' ? `missing ${name}` : `missing ${terminator}, unterminated name`)
      if (token === terminator) {
        if (result === '') throw new PythonRegexError(`missing ${name}`)
        return result
      }
      result += token
    }
  }
}

interface Width { lo: number, hi: number }

class State {
  flags: Partial<Flags> = {}
  readonly groupNames = new Map<string, number>()
  /** Per group: its width once closed, null while open. */
  readonly groupWidths: Array<Width | null> = [null]
  lookbehindGroups: number | null = null
  readonly conditionalRefs: number[] = []

  get groups (): number { return this.groupWidths.length }

  openGroup (name: string | null): number {
    const id = this.groups
    this.groupWidths.push(null)
    if (this.groups > MAXGROUPS) throw new PythonRegexError('too many groups')
    if (name !== null) {
      if (this.groupNames.has(name)) throw new PythonRegexError(`redefinition of group name '${name}'`)
      this.groupNames.set(name, id)
    }
    return id
  }

  isClosed (id: number): boolean {
    return id < this.groups && this.groupWidths[id] !== null
  }

  checkLookbehindGroup (id: number): void {
    if (this.lookbehindGroups === null) return
    if (!this.isClosed(id)) throw new PythonRegexError('cannot refer to an open group')
    if (id >= this.lookbehindGroups) throw new PythonRegexError('cannot refer to group defined in the same lookbehind subpattern')
  }
}

/** Python's `str.isidentifier()`, close enough: JavaScript's identifier properties are Unicode's XID ones plus "$". */
function checkGroupName (name: string): void {
  if (!/^[\p{ID_Start}_][\p{ID_Continue}]*$/u.test(name)) throw new PythonRegexError(`bad character in group name '${name}'`)
}

function escapeNode (source: Source, escape: string, state: State): Node {
  const category = CATEGORY_ESCAPES[escape]
  if (category !== undefined) return category
  const known = ESCAPES[escape]
  if (known !== undefined) return { kind: 'literal', code: known }
  const c = escape.slice(1)
  const fixed = fixedWidthEscape(source, escape, c)
  if (fixed !== null) return { kind: 'literal', code: fixed }
  if (c === '0') return { kind: 'literal', code: Number.parseInt(source.getWhile(2, OCTAL) || '0', 8) }
  if (DIGITS.test(c)) {
    let digits = c
    if (source.next !== null && DIGITS.test(source.next)) {
      digits += source.get()
      if (OCTAL.test(digits[0]) && OCTAL.test(digits[1]) && source.next !== null && OCTAL.test(source.next)) {
        digits += source.get()
        const code = Number.parseInt(digits, 8)
        if (code > 0o377) throw new PythonRegexError(`octal escape value \\${digits} outside of range 0-0o377`)
        return { kind: 'literal', code }
      }
    }
    const group = Number(digits)
    if (group < state.groups) {
      if (!state.isClosed(group)) throw new PythonRegexError('cannot refer to an open group')
      state.checkLookbehindGroup(group)
      return { kind: 'groupref', group }
    }
    throw new PythonRegexError(`invalid group reference ${group}`)
  }
  return { kind: 'literal', code: plainEscape(escape) }
}

function classEscape (source: Source, escape: string): SetItem {
  const known = ESCAPES[escape]
  if (known !== undefined) return { kind: 'literal', code: known }
  const category = CATEGORY_ESCAPES[escape]
  if (category?.kind === 'set') return category.items[0]
  const c = escape.slice(1)
  const fixed = fixedWidthEscape(source, escape, c)
  if (fixed !== null) return { kind: 'literal', code: fixed }
  if (OCTAL.test(c)) {
    const digits = c + source.getWhile(2, OCTAL)
    const code = Number.parseInt(digits, 8)
    if (code > 0o377) throw new PythonRegexError(`octal escape value \\${digits} outside of range 0-0o377`)
    return { kind: 'literal', code }
  }
  if (DIGITS.test(c)) throw new PythonRegexError(`bad escape ${escape}`)
  return { kind: 'literal', code: plainEscape(escape) }
}

/** `\xhh`, `\uhhhh`, `\Uhhhhhhhh`, `\N{name}`; null for any other escape. */
function fixedWidthEscape (source: Source, escape: string, c: string): number | null {
  const digits = c === 'x' ? 2 : c === 'u' ? 4 : c === 'U' ? 8 : 0
  if (digits > 0) {
    const hex = source.getWhile(digits, HEX)
    if (hex.length !== digits) throw new PythonRegexError(`incomplete escape ${escape}${hex}`)
    const code = Number.parseInt(hex, 16)
    if (code > 0x10FFFF) throw new PythonRegexError(`bad escape ${escape}${hex}`)
    return code
  }
  if (c === 'N') {
    if (!source.match('{')) throw new PythonRegexError('missing {')
    const name = source.getUntil('}', 'character name')
    // Python looks the name up in its Unicode database, which JavaScript does not carry.
    throw new UntranslatableRegexError(`\\N{${name}} (a character by name); write the character itself or \\uXXXX`)
  }
  return null
}

/** A backslash before anything but an ASCII letter is that character. */
function plainEscape (escape: string): number {
  const char = escape.slice(1)
  if (ASCII_LETTER.test(char)) throw new PythonRegexError(`bad escape ${escape}`)
  return char.codePointAt(0) as number
}

function parseAlternation (source: Source, state: State, verbose: boolean, nested: number): Node[] {
  const alternatives: Node[][] = []
  for (;;) {
    alternatives.push(parseSequence(source, state, verbose, nested + 1, nested === 0 && alternatives.length === 0))
    if (!source.match('|')) break
    if (nested === 0) verbose = state.flags.x === true
  }
  return alternatives.length === 1 ? alternatives[0] : [{ kind: 'branch', alternatives }]
}

function parseSequence (source: Source, state: State, verbose: boolean, nested: number, first: boolean): Node[] {
  const sequence: Node[] = []
  for (;;) {
    const token = source.next
    if (token === null || token === '|' || token === ')') break
    source.get()
    if (verbose) {
      if (VERBOSE_SPACE.has(token)) continue
      if (token === '#') {
        for (;;) {
          const skipped = source.get()
          if (skipped === null || skipped === '\n') break
        }
        continue
      }
    }
    if (token[0] === '\\' && token.length > 1) {
      sequence.push(escapeNode(source, token, state))
    } else if (!SPECIAL.has(token)) {
      sequence.push({ kind: 'literal', code: token.codePointAt(0) as number })
    } else if (token === '[') {
      sequence.push(parseSet(source))
    } else if (token === '*' || token === '+' || token === '?' || token === '{') {
      if (!parseRepeat(source, token, sequence)) sequence.push({ kind: 'literal', code: 0x7B })
    } else if (token === '.') {
      sequence.push({ kind: 'any' })
    } else if (token === '(') {
      const global = parseGroup(source, state, verbose, nested, sequence)
      if (global) {
        if (!first || sequence.length > 0) throw new PythonRegexError('global flags not at the start of the expression')
        verbose = state.flags.x === true
      }
    } else if (token === '^') {
      sequence.push({ kind: 'at', at: 'beginning' })
    } else {
      sequence.push({ kind: 'at', at: 'end' })
    }
  }
  return sequence
}

function parseSet (source: Source): Node {
  const items: SetItem[] = []
  const negate = source.match('^')
  for (;;) {
    const token = source.get()
    if (token === null) throw new PythonRegexError('unterminated character set')
    if (token === ']' && items.length > 0) break
    const first: SetItem = token[0] === '\\' && token.length > 1 ? classEscape(source, token) : { kind: 'literal', code: token.codePointAt(0) as number }
    if (!source.match('-')) { items.push(first); continue }
    const last = source.get()
    if (last === null) throw new PythonRegexError('unterminated character set')
    if (last === ']') {
      items.push(first, { kind: 'literal', code: 0x2D })
      break
    }
    const second: SetItem = last[0] === '\\' && last.length > 1 ? classEscape(source, last) : { kind: 'literal', code: last.codePointAt(0) as number }
    if (first.kind !== 'literal' || second.kind !== 'literal' || second.code < first.code) {
      throw new PythonRegexError(`bad character range ${token}-${last}`)
    }
    items.push({ kind: 'range', lo: first.code, hi: second.code })
  }
  return { kind: 'set', negate, items }
}

/** Applies a quantifier to the sequence's last item; false when `{` turns out to be a literal. */
function parseRepeat (source: Source, token: string, sequence: Node[]): boolean {
  let min = 0
  let max = MAXREPEAT
  if (token === '?') max = 1
  else if (token === '+') min = 1
  else if (token === '{') {
    const here = source.tell()
    if (source.next === '}') return false
    const lo = source.getWhile(Number.MAX_SAFE_INTEGER, DIGITS)
    const hi = source.match(',') ? source.getWhile(Number.MAX_SAFE_INTEGER, DIGITS) : lo
    if (!source.match('}')) { source.seek(here); return false }
    if (lo !== '') min = Number(lo)
    if (hi !== '') max = Number(hi)
    if (min >= MAXREPEAT || (hi !== '' && max >= MAXREPEAT)) throw new PythonRegexError('the repetition number is too large')
    if (hi !== '' && max < min) throw new PythonRegexError('min repeat greater than max repeat')
  }
  const last = sequence.at(-1)
  if (last === undefined || last.kind === 'at') throw new PythonRegexError('nothing to repeat')
  if (last.kind === 'repeat') throw new PythonRegexError('multiple repeat')
  const plainGroup = last.kind === 'group' && last.group === null && Object.keys(last.add).length === 0 && Object.keys(last.remove).length === 0
  const item = plainGroup ? last.body : [last]
  const mode = source.match('?') ? 'lazy' : source.match('+') ? 'possessive' : 'greedy'
  sequence[sequence.length - 1] = { kind: 'repeat', min, max, mode, item }
  return true
}

/** Parses what follows "(": appends a node, or returns true for global flags. */
function parseGroup (source: Source, state: State, verbose: boolean, nested: number, sequence: Node[]): boolean {
  let capture = true
  let atomic = false
  let name: string | null = null
  let add: Partial<Flags> = {}
  let remove: Partial<Flags> = {}
  if (source.match('?')) {
    const char = source.get()
    if (char === null) throw new PythonRegexError('unexpected end of pattern')
    if (char === 'P') {
      if (source.match('<')) {
        name = source.getUntil('>', 'group name')
        checkGroupName(name)
      } else if (source.match('=')) {
        const refName = source.getUntil(')', 'group name')
        checkGroupName(refName)
        const id = state.groupNames.get(refName)
        if (id === undefined) throw new PythonRegexError(`unknown group name '${refName}'`)
        if (!state.isClosed(id)) throw new PythonRegexError('cannot refer to an open group')
        state.checkLookbehindGroup(id)
        sequence.push({ kind: 'groupref', group: id })
        return false
      } else {
        const next = source.get()
        if (next === null) throw new PythonRegexError('unexpected end of pattern')
        throw new PythonRegexError(`unknown extension ?P${next}`)
      }
    } else if (char === ':') {
      capture = false
    } else if (char === '#') {
      for (;;) {
        if (source.next === null) throw new PythonRegexError('missing ), unterminated comment')
        if (source.get() === ')') return false
      }
    } else if (char === '=' || char === '!' || char === '<') {
      let kind = char
      const behind = char === '<'
      let outerLookbehind: number | null = null
      if (behind) {
        const next = source.get()
        if (next === null) throw new PythonRegexError('unexpected end of pattern')
        if (next !== '=' && next !== '!') throw new PythonRegexError(`unknown extension ?<${next}`)
        kind = next
        outerLookbehind = state.lookbehindGroups
        if (outerLookbehind === null) state.lookbehindGroups = state.groups
      }
      const body = parseAlternation(source, state, verbose, nested + 1)
      if (behind && outerLookbehind === null) state.lookbehindGroups = null
      if (!source.match(')')) throw new PythonRegexError('missing ), unterminated subpattern')
      if (behind) {
        const { lo, hi } = width(body, state)
        if (lo !== hi) throw new PythonRegexError('look-behind requires fixed-width pattern')
      }
      sequence.push({ kind: 'assert', behind, negate: kind === '!', body })
      return false
    } else if (char === '(') {
      parseConditional(source, state, verbose, nested)
      sequence.push({ kind: 'conditional' })
      return false
    } else if (char === '>') {
      capture = false
      atomic = true
    } else if (FLAG_LETTERS.has(char) || char === '-') {
      const flags = parseFlags(source, state, char)
      if (flags === null) return true
      ;({ add, remove } = flags)
      capture = false
    } else {
      throw new PythonRegexError(`unknown extension ?${char}`)
    }
  }
  const group = capture ? state.openGroup(name) : null
  const subVerbose = (verbose || add.x === true) && remove.x !== true
  const body = parseAlternation(source, state, subVerbose, nested + 1)
  if (!source.match(')')) throw new PythonRegexError('missing ), unterminated subpattern')
  if (group !== null) state.groupWidths[group] = width(body, state)
  sequence.push(atomic ? { kind: 'atomic', body } : { kind: 'group', group, add, remove, body })
  return false
}

function parseConditional (source: Source, state: State, verbose: boolean, nested: number): void {
  const condition = source.getUntil(')', 'group name')
  let group: number
  if (/^[\p{ID_Start}_][\p{ID_Continue}]*$/u.test(condition)) {
    const id = state.groupNames.get(condition)
    if (id === undefined) throw new PythonRegexError(`unknown group name '${condition}'`)
    group = id
  } else {
    // int(): surrounding spaces, a sign and digit separators are Python's too.
    const text = condition.trim().replaceAll('_', '')
    if (!/^\+?\p{Nd}+$/u.test(text) || /^_|_$|__/.test(condition.trim())) throw new PythonRegexError(`bad character in group name '${condition}'`)
    group = Number([...text.replace('+', '')].map(digit => /\p{Nd}/u.test(digit) ? String(decimalDigitValue(digit)) : digit).join(''))
    if (group === 0) throw new PythonRegexError('bad group number')
    if (group >= MAXGROUPS) throw new PythonRegexError(`invalid group reference ${group}`)
    state.conditionalRefs.push(group)
  }
  state.checkLookbehindGroup(group)
  parseSequence(source, state, verbose, nested + 1, false)
  if (source.match('|')) {
    parseSequence(source, state, verbose, nested + 1, false)
    if (source.next === '|') throw new PythonRegexError('conditional backref with more than two branches')
  }
  if (!source.match(')')) throw new PythonRegexError('missing ), unterminated subpattern')
}

/** The value of a Unicode decimal digit: Unicode assigns them in runs of whole blocks of ten, from 0. */
export function decimalDigitValue (digit: string): number {
  const code = digit.codePointAt(0) as number
  let start = code
  while (/\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--
  return (code - start) % 10
}

function parseFlags (source: Source, state: State, first: string): { add: Partial<Flags>, remove: Partial<Flags> } | null {
  const add: Partial<Flags> = {}
  const remove: Partial<Flags> = {}
  let char: string | null = first
  let typeFlag: string | null = null
  if (char !== '-') {
    for (;;) {
      if (char === 'L') throw new PythonRegexError('bad inline flags: cannot use \'L\' flag with a str pattern')
      if (char === 'a' || char === 'u') {
        if (typeFlag !== null && typeFlag !== char) throw new PythonRegexError('bad inline flags: flags \'a\', \'u\' and \'L\' are incompatible')
        typeFlag = char
      }
      setFlag(add, char)
      char = source.get()
      if (char === null) throw new PythonRegexError('missing -, : or )')
      if (char === ')' || char === '-' || char === ':') break
      if (!FLAG_LETTERS.has(char)) throw new PythonRegexError(/\p{L}/u.test(char) ? 'unknown flag' : 'missing -, : or )')
    }
  }
  if (char === ')') {
    Object.assign(state.flags, add)
    return null
  }
  if (add.t === true) throw new PythonRegexError('bad inline flags: cannot turn on global flag')
  if (char === '-') {
    char = source.get()
    if (char === null) throw new PythonRegexError('missing flag')
    if (!FLAG_LETTERS.has(char)) throw new PythonRegexError(/\p{L}/u.test(char) ? 'unknown flag' : 'missing flag')
    for (;;) {
      if (char === 'a' || char === 'u' || char === 'L') throw new PythonRegexError('bad inline flags: cannot turn off flags \'a\', \'u\' and \'L\'')
      setFlag(remove, char)
      char = source.get()
      if (char === null) throw new PythonRegexError('missing :')
      if (char === ':') break
      if (!FLAG_LETTERS.has(char)) throw new PythonRegexError(/\p{L}/u.test(char) ? 'unknown flag' : 'missing :')
    }
  }
  if (remove.t === true) throw new PythonRegexError('bad inline flags: cannot turn off global flag')
  if (Object.keys(add).some(flag => Object.hasOwn(remove, flag))) throw new PythonRegexError('bad inline flags: flag turned on and off')
  return { add, remove }
}

function setFlag (flags: Partial<Flags>, letter: string): void {
  flags[letter as FlagName] = true
}

function width (nodes: Node[], state: State): Width {
  let lo = 0
  let hi = 0
  for (const node of nodes) {
    let part: Width
    switch (node.kind) {
      case 'branch': {
        const widths = node.alternatives.map(alternative => width(alternative, state))
        part = { lo: Math.min(MAXREPEAT - 1, ...widths.map(w => w.lo)), hi: Math.max(0, ...widths.map(w => w.hi)) }
        break
      }
      case 'group': case 'atomic': part = width(node.body, state); break
      case 'repeat': {
        const item = width(node.item, state)
        part = { lo: item.lo * node.min, hi: item.hi * node.max }
        break
      }
      case 'literal': case 'any': case 'set': part = { lo: 1, hi: 1 }; break
      case 'groupref': part = state.groupWidths[node.group] ?? { lo: 0, hi: 0 }; break
      // A conditional is never translated, so its width only has to be some width.
      case 'conditional': part = { lo: 0, hi: MAXREPEAT }; break
      default: part = { lo: 0, hi: 0 }
    }
    lo += part.lo
    hi += part.hi
  }
  return { lo: Math.min(lo, MAXREPEAT - 1), hi: Math.min(hi, MAXREPEAT) }
}

function parse (pattern: string): { nodes: Node[], state: State } {
  const source = new Source(pattern)
  const state = new State()
  const nodes = parseAlternation(source, state, false, 0)
  if (source.next !== null) throw new PythonRegexError('unbalanced parenthesis')
  if (state.flags.a === true && state.flags.u === true) throw new PythonRegexError('ASCII and UNICODE flags are incompatible')
  for (const group of state.conditionalRefs) {
    if (group >= state.groups) throw new PythonRegexError(`invalid group reference ${group}`)
  }
  return { nodes, state }
}

// --- writing the JavaScript RegExp (flag `v`, never `m` or `s`: those are written out) -------

const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000'
const ASCII_SPACE = '\\t\\n\\v\\f\\r\\x20'

function categoryClass (name: Category, ascii: boolean): string {
  switch (name) {
    case 'd': return ascii ? '[0-9]' : '\\p{Nd}'
    case 'D': return ascii ? '[^0-9]' : '\\P{Nd}'
    case 'w': return ascii ? '[a-zA-Z0-9_]' : '[\\p{L}\\p{N}_]'
    case 'W': return ascii ? '[^a-zA-Z0-9_]' : '[^\\p{L}\\p{N}_]'
    case 's': return `[${ascii ? ASCII_SPACE : PY_SPACE}]`
    case 'S': return `[^${ascii ? ASCII_SPACE : PY_SPACE}]`
  }
}

const codePoint = (code: number): string => `\\u{${code.toString(16)}}`

class Writer {
  private helpers = 0

  write (nodes: Node[], flags: Flags): string {
    return nodes.map(node => this.node(node, flags)).join('')
  }

  private node (node: Node, flags: Flags): string {
    switch (node.kind) {
      case 'literal': return codePoint(node.code)
      case 'any': return flags.s ? '[\\u{0}-\\u{10ffff}]' : '[^\\n]'
      case 'set': {
        const items = node.items.map(item => item.kind === 'literal'
          ? codePoint(item.code)
          : item.kind === 'range' ? `${codePoint(item.lo)}-${codePoint(item.hi)}` : categoryClass(item.name, flags.a))
        return `[${node.negate ? '^' : ''}${items.join('')}]`
      }
      case 'at': return this.at(node.at, flags)
      case 'repeat': {
        const quantifier = node.max === MAXREPEAT ? `{${node.min},}` : `{${node.min},${node.max}}`
        const item = `(?:${this.write(node.item, flags)})`
        if (node.mode === 'possessive') return this.atomic(`${item}${quantifier}`)
        return `${item}${quantifier}${node.mode === 'lazy' ? '?' : ''}`
      }
      case 'group': {
        const inner: Flags = { ...flags }
        for (const flag of ['i', 'm', 's', 'x', 'a'] as const) {
          if (node.add[flag] === true) inner[flag] = true
          if (node.remove[flag] === true) inner[flag] = false
        }
        let body = this.write(node.body, inner)
        if (inner.i !== flags.i) body = `(?${inner.i ? 'i' : '-i'}:${body})`
        return node.group === null ? `(?:${body})` : `(?<g${node.group}>${body})`
      }
      case 'atomic': return this.atomic(this.write(node.body, flags))
      case 'assert': return `(?${node.behind ? '<' : ''}${node.negate ? '!' : '='}${this.write(node.body, flags)})`
      case 'groupref': return `\\k<g${node.group}>`
      case 'conditional': throw new UntranslatableRegexError('a conditional group (?(…)…|…)')
      case 'branch': return `(?:${node.alternatives.map(alternative => this.write(alternative, flags)).join('|')})`
    }
  }

  /** An atomic group: a lookahead captures the match, which is then consumed as it stands, without backtracking into it. */
  private atomic (body: string): string {
    const name = `a${++this.helpers}`
    return `(?=(?<${name}>${body}))\\k<${name}>`
  }

  private at (at: At, flags: Flags): string {
    const word = categoryClass('w', flags.a)
    switch (at) {
      case 'beginningString': return '^'
      case 'endString': return '$'
      // Python's multi-line anchors know only "\n", where JavaScript's `m` also takes "\r" and U+2028/9.
      case 'beginning': return flags.m ? '(?<![^\\n])' : '^'
      case 'end': return flags.m ? '(?![^\\n])' : '(?=\\n?$)'
      case 'boundary': return `(?:(?<=${word})(?!${word})|(?<!${word})(?=${word}))`
      case 'nonBoundary': return `(?:(?<=${word})(?=${word})|(?<!${word})(?!${word}))`
    }
  }
}

/**
 * The JavaScript RegExp whose `test` is Python's `re.search(pattern, text) is not None`. Throws
 * PythonRegexError where `re.compile` would refuse the pattern, UntranslatableRegexError for the
 * one construct JavaScript cannot express.
 */
export function pythonRegExp (pattern: string): RegExp {
  const { nodes, state } = parse(pattern)
  const flags: Flags = { i: state.flags.i === true, m: state.flags.m === true, s: state.flags.s === true, x: false, a: state.flags.a === true, u: false, t: false }
  return new RegExp(new Writer().write(nodes, flags), flags.i ? 'iv' : 'v')
}

/** Whether `re.compile(pattern)` accepts the pattern: the `regex` format. */
export function isPythonRegex (pattern: string): boolean {
  try {
    parse(pattern)
    return true
  } catch (error) {
    if (error instanceof PythonRegexError) return false
    if (error instanceof UntranslatableRegexError) return true
    throw error
  }
}

/**
 * Ajv's RegExp engine (its `code.regExp` option): a pattern means what Python's `re.search` makes
 * of it. `code` is the name standalone validation code calls it by (scripts/precompile-schemas.ts).
 */
export const PYTHON_PATTERNS = Object.assign(function pythonPattern (pattern: string): RegExp {
  try {
    return pythonRegExp(pattern)
  } catch (error) {
    if (error instanceof PythonRegexError) throw new Error(`pattern ${JSON.stringify(pattern)} is not a valid regular expression: ${error.message}`, { cause: error })
    throw error
  }
}, { code: 'pythonPattern' })
