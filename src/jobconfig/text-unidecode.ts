// text-unidecode 1.3's transliteration: python-slugify's own dependency, which it uses unless the
// optional Python Unidecode package is installed (Prefect does not install it), so a job name
// slugs exactly as Prefect slugs it.
//
// Both text-unidecode and the npm `unidecode` package carry Perl Text::Unidecode's per-block tables,
// so pushpool reads npm's tables instead of shipping a 65,535-entry copy, and corrects where they
// differ from text-unidecode 1.3. The conformance run (test/conformance/harness.ts) compares every
// BMP code point with the Python package, so a table that drifts is noticed.

import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const requireTable = createRequire(import.meta.url)
// Resolved once, so a missing package fails at start-up rather than turning every name into "[?]".
const TABLES = dirname(requireTable.resolve('unidecode/data/x00.js'))

/** text-unidecode's entry for a code point in a block npm's tables lack. */
const UNKNOWN = '[?] '
const BLOCK_SIZE = 0x100
const BMP_END = 0xffff

// Where text-unidecode 1.3 differs from npm unidecode 1.1.0, as [first, last, text] ranges: npm's
// tables spell out a few code points text-unidecode leaves unknown or empty, and text-unidecode
// ends several blocks with "[?] ".
const CORRECTIONS: ReadonlyArray<readonly [number, number, string]> = [
  [0x80, 0x9f, ''], // C1 controls: npm spells out Windows-1252
  [0x2e5, 0x2eb, ''],
  [0x2ef, 0x2fe, '[?]'],
  [0x3f4, 0x3f9, '[?]'],
  [0x3fc, 0x3fe, '[?]'],
  [0xaf0, 0xaf1, '[?]'],
  [0xaf9, 0xaf9, '[?]'],
  [0x13f5, 0x13f5, '[?]'],
  [0x13f8, 0x13fd, '[?]'],
  [0x1efa, 0x1efe, '[?]'],
  [0x25f4, 0x25f7, '#'],
  [0x25f8, 0x25fe, '[?]'],
  [0xfdf0, 0xfdfb, ''],
  [0xfdfc, 0xfdfd, '[?]'],
  ...[
    0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x13, 0x16, 0x17,
    0x18, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x4d,
    0x9f, 0xa4, 0xd7, 0xfa, 0xfd
  ].map(block => [block * BLOCK_SIZE + 0xff, block * BLOCK_SIZE + 0xff, UNKNOWN] as const)
]

const blocks = new Map<number, readonly string[] | null>()

function block (index: number): readonly string[] | null {
  if (!blocks.has(index)) {
    const file = join(TABLES, `x${index.toString(16).padStart(2, '0')}.js`)
    blocks.set(index, existsSync(file) ? requireTable(file) as string[] : null)
  }
  return blocks.get(index) as readonly string[] | null
}

/** npm's tables keep Perl's string escapes (`\@`, `\{`, `\n`…); text-unidecode has the characters. */
function unescapePerl (text: string): string {
  return text.replace(/\\([$@\\{}])/g, '$1').replaceAll('\\n', '\n')
}

function transliterateCodePoint (codePoint: number): string {
  // text-unidecode keeps ASCII and drops everything beyond the BMP.
  if (codePoint < 0x80) return String.fromCodePoint(codePoint)
  if (codePoint > BMP_END) return ''
  const correction = CORRECTIONS.find(([first, last]) => codePoint >= first && codePoint <= last)
  if (correction !== undefined) return correction[2]
  const table = block(Math.floor(codePoint / BLOCK_SIZE))
  return table === null ? UNKNOWN : unescapePerl(table[codePoint % BLOCK_SIZE] ?? '')
}

/** `text_unidecode.unidecode(text)`. */
export function textUnidecode (text: string): string {
  let out = ''
  for (const char of text) out += transliterateCodePoint(char.codePointAt(0) as number)
  return out
}
