// Python semantics for JSON values: `str()` and truthiness.
//
// `str()`: Prefect's templating splices values into mixed strings with
// `str(value)` and coerces `env` values the same way, so a job sees `True`, `None` and
// `{'a': 1}` where JSON would say `true`, `null` and `{"a":1}`. Reproducing that exactly keeps
// pushpool's jobs byte-identical to the ones Prefect's worker creates. Numbers arrive as
// prefect/exact-json.ts reads them: a bigint is a Python int too large for a JavaScript number, a
// boxed Number a float whose value is whole (Python prints "1.0").

import { isWholeFloat } from '../prefect/exact-json.ts'

export function pythonStr (value: unknown): string {
  return typeof value === 'string' ? value : pythonRepr(value)
}

/** Python's `bool(value)`: empty strings, lists and dicts, 0 and None are false. */
export function pythonTruthy (value: unknown): boolean {
  if (isWholeFloat(value)) return value.valueOf() !== 0
  if (Array.isArray(value)) return value.length > 0
  if (typeof value === 'object' && value !== null) return Object.keys(value).length > 0
  return Boolean(value)
}

export function pythonRepr (value: unknown): string {
  if (value === null || value === undefined) return 'None'
  if (value === true) return 'True'
  if (value === false) return 'False'
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : pythonFloat(value)
  if (typeof value === 'bigint') return value.toString()
  if (isWholeFloat(value)) return pythonFloat(value.valueOf())
  if (typeof value === 'string') return pythonStringRepr(value)
  if (Array.isArray(value)) return `[${value.map(pythonRepr).join(', ')}]`
  if (typeof value === 'object') {
    const items = Object.entries(value).map(([key, item]) => `${pythonStringRepr(key)}: ${pythonRepr(item)}`)
    return `{${items.join(', ')}}`
  }
  return String(value)
}

/** Python's `repr(float)`: the shortest round-tripping digits, positional for exponents in [-4, 16), with ".0" when whole. */
function pythonFloat (value: number): string {
  if (Number.isNaN(value)) return 'nan'
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf'
  if (Object.is(value, -0)) return '-0.0'
  const [mantissa, exponentText] = value.toExponential().split('e')
  const exponent = Number(exponentText)
  if (exponent >= -4 && exponent < 16) return Number.isInteger(value) ? `${String(value)}.0` : String(value)
  const sign = exponent < 0 ? '-' : '+'
  return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`
}

// Characters `str.isprintable()` rejects, apart from the plain space.
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u

function pythonStringRepr (text: string): string {
  const quote = text.includes('\'') && !text.includes('"') ? '"' : '\''
  let out = quote
  for (const char of text) {
    if (char === quote || char === '\\') out += `\\${char}`
    else if (char === '\t') out += '\\t'
    else if (char === '\n') out += '\\n'
    else if (char === '\r') out += '\\r'
    else if (char !== ' ' && NON_PRINTABLE.test(char)) out += escapeCodePoint(char.codePointAt(0) as number)
    else out += char
  }
  return out + quote
}

function escapeCodePoint (codePoint: number): string {
  const hex = codePoint.toString(16)
  if (codePoint < 0x100) return `\\x${hex.padStart(2, '0')}`
  if (codePoint < 0x10000) return `\\u${hex.padStart(4, '0')}`
  return `\\U${hex.padStart(8, '0')}`
}
