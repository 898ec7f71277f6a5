// The `idn-hostname` format as Prefect's server checks it: jsonschema calls `idna.encode(value)`
// (IDNA 2008, RFC 5891-5893, no UTS #46 mapping) and takes any IDNAError or UnicodeError as
// invalid. This is a port of idna's `encode` → `alabel` / `ulabel` → `check_label` (idna/core.py)
// and of Python's punycode codec. The Unicode data it reads (idna's code point classes, joining
// types and scripts, Python's bidirectional classes and viramas) is in idna-data.json, written by
// `.venv/bin/python test/conformance/render.py --idna-data > src/jobconfig/idna-data.json`; the
// conformance run notices when the installed packages no longer produce the same data.

import data from './idna-data.json' with { type: 'json' }

class IdnaError extends Error {}

const MAX_INPUT = 1024
const MAX_DOMAIN = 253
const MAX_LABEL = 63
const VIRAMA = 9
const ACE_PREFIX = 'xn--'
const DOTS = /[.\u3002\uff0e\uff61]/u
const LDH_LABEL = /^(?!..--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/** Flat [first, last, …] ranges, searched by bisection. */
class Ranges {
  private readonly flat: readonly number[]
  constructor (flat: readonly number[]) { this.flat = flat }

  has (codePoint: number): boolean {
    let lo = 0
    let hi = this.flat.length / 2 - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (codePoint < this.flat[2 * mid]) hi = mid - 1
      else if (codePoint > this.flat[2 * mid + 1]) lo = mid + 1
      else return true
    }
    return false
  }
}

const PVALID = new Ranges(data.classes.PVALID)
const CONTEXTJ = new Ranges(data.classes.CONTEXTJ)
const CONTEXTO = new Ranges(data.classes.CONTEXTO)
const JOINING = Object.entries(data.joining).map(([type, flat]) => [type, new Ranges(flat)] as const)
const SCRIPTS = Object.fromEntries(Object.entries(data.scripts).map(([name, flat]) => [name, new Ranges(flat)]))
const VIRAMAS = new Ranges(data.virama)

function bidiClass (codePoint: number): string {
  const runs = data.bidi.runs
  let lo = 0
  let hi = runs.length / 2 - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (runs[2 * mid] <= codePoint) lo = mid
    else hi = mid - 1
  }
  return data.bidi.classes[runs[2 * lo + 1]]
}

function joiningType (codePoint: number): string | null {
  return JOINING.find(([, ranges]) => ranges.has(codePoint))?.[0] ?? null
}

const codePoints = (text: string): number[] => [...text].map(char => char.codePointAt(0) as number)

/** `idna.encode(value)` succeeds. */
export function isIdnHostname (value: string): boolean {
  try {
    encode(value)
    return true
  } catch (error) {
    if (error instanceof IdnaError) return false
    throw error
  }
}

function encode (domain: string): void {
  const length = codePoints(domain).length
  if (length > MAX_INPUT || length > MAX_DOMAIN + 1) throw new IdnaError('domain too long')
  const labels = domain.split(DOTS)
  if (labels.length === 1 && labels[0] === '') throw new IdnaError('empty domain')
  const trailingDot = labels.at(-1) === ''
  if (trailingDot) labels.pop()
  const encoded = labels.map(alabel)
  // Python joins a trailing dot too, and allows one more character for it.
  if (encoded.join('.').length > MAX_DOMAIN) throw new IdnaError('domain too long')
}

function alabel (label: string): string {
  if (codePoints(label).length > MAX_INPUT) throw new IdnaError('label too long')
  if (/^[\x00-\x7f]*$/.test(label)) {
    ulabelOfAscii(label)
    if (label.length > MAX_LABEL) throw new IdnaError('label too long')
    if (label === '') throw new IdnaError('empty label')
    return label
  }
  checkLabel(label)
  const ace = ACE_PREFIX + punycodeEncode(label)
  if (ace.length > MAX_LABEL) throw new IdnaError('label too long')
  return ace
}

function ulabelOfAscii (label: string): void {
  let ascii = label.toLowerCase()
  if (!ascii.startsWith(ACE_PREFIX)) { checkLabel(ascii); return }
  ascii = ascii.slice(ACE_PREFIX.length)
  if (ascii === '') throw new IdnaError('malformed A-label')
  if (ascii.endsWith('-')) throw new IdnaError('A-label ends with a hyphen')
  const decoded = punycodeDecode(ascii)
  if (punycodeEncode(decoded) !== ascii) throw new IdnaError('A-label is not canonical Punycode')
  checkLabel(decoded)
}

function checkLabel (label: string): void {
  const points = codePoints(label)
  if (points.length > MAX_INPUT) throw new IdnaError('label too long')
  if (points.length === 0) throw new IdnaError('empty label')
  if (LDH_LABEL.test(label)) return
  if (points.length > MAX_DOMAIN + 1) throw new IdnaError('label too long')
  if (label.normalize('NFC') !== label) throw new IdnaError('not NFC')
  const chars = [...label]
  if (chars.slice(2, 4).join('') === '--') throw new IdnaError('hyphens in 3rd and 4th position')
  if (label.startsWith('-') || label.endsWith('-')) throw new IdnaError('starts or ends with a hyphen')
  if (/^\p{M}/u.test(label)) throw new IdnaError('begins with a combining mark')
  points.forEach((codePoint, position) => {
    if (PVALID.has(codePoint)) return
    if (CONTEXTJ.has(codePoint)) {
      if (!validContextJ(points, position)) throw new IdnaError('joiner not allowed here')
    } else if (CONTEXTO.has(codePoint)) {
      if (!validContextO(points, position)) throw new IdnaError('code point not allowed here')
    } else {
      throw new IdnaError('code point not allowed')
    }
  })
  checkBidi(points)
}

/** RFC 5892 A.1 and A.2. (Python raises for an unnamed character before a joiner; the label is refused either way.) */
function validContextJ (points: number[], position: number): boolean {
  const codePoint = points[position]
  const afterVirama = position > 0 && VIRAMAS.has(points[position - 1])
  if (codePoint === 0x200D) return afterVirama
  if (codePoint !== 0x200C) return false
  if (afterVirama) return true
  const joinsOn = (from: number, step: number, accepted: string): boolean => {
    for (let i = from; i >= 0 && i < points.length; i += step) {
      const type = joiningType(points[i])
      if (type === 'T') continue
      return type !== null && accepted.includes(type)
    }
    return false
  }
  return joinsOn(position - 1, -1, 'LD') && joinsOn(position + 1, 1, 'RD')
}

/** RFC 5892 A.3-A.9. */
function validContextO (points: number[], position: number): boolean {
  const codePoint = points[position]
  const isScript = (point: number | undefined, script: string): boolean => point !== undefined && SCRIPTS[script].has(point)
  if (codePoint === 0x00B7) return position > 0 && position < points.length - 1 && points[position - 1] === 0x6C && points[position + 1] === 0x6C
  if (codePoint === 0x0375) return position < points.length - 1 && points.length > 1 && isScript(points[position + 1], 'Greek')
  if (codePoint === 0x05F3 || codePoint === 0x05F4) return position > 0 && isScript(points[position - 1], 'Hebrew')
  if (codePoint === 0x30FB) {
    return points.some(point => point !== 0x30FB && (isScript(point, 'Hiragana') || isScript(point, 'Katakana') || isScript(point, 'Han')))
  }
  if (codePoint >= 0x660 && codePoint <= 0x669) return !points.some(point => point >= 0x6F0 && point <= 0x6F9)
  if (codePoint >= 0x6F0 && codePoint <= 0x6F9) return !points.some(point => point >= 0x660 && point <= 0x669)
  return false
}

const RTL_FIRST = new Set(['R', 'AL'])
const RTL = new Set(['R', 'AL', 'AN'])
const RTL_ALLOWED = new Set(['R', 'AL', 'AN', 'EN', 'ES', 'CS', 'ET', 'ON', 'BN', 'NSM'])
const RTL_ENDING = new Set(['R', 'AL', 'EN', 'AN'])
const LTR_ALLOWED = new Set(['L', 'EN', 'ES', 'CS', 'ET', 'ON', 'BN', 'NSM'])
const LTR_ENDING = new Set(['L', 'EN'])

/** The Bidi Rule (RFC 5893), applied only to labels holding a right-to-left character. */
function checkBidi (points: number[]): void {
  const directions = points.map(bidiClass)
  if (directions.includes('')) throw new IdnaError('unknown directionality')
  if (!directions.some(direction => RTL.has(direction))) return
  const rtl = RTL_FIRST.has(directions[0])
  if (!rtl && directions[0] !== 'L') throw new IdnaError('bidi rule 1')
  let validEnding = false
  let numberType: string | null = null
  for (const direction of directions) {
    if (!(rtl ? RTL_ALLOWED : LTR_ALLOWED).has(direction)) throw new IdnaError(rtl ? 'bidi rule 2' : 'bidi rule 5')
    if ((rtl ? RTL_ENDING : LTR_ENDING).has(direction)) validEnding = true
    else if (direction !== 'NSM') validEnding = false
    if (rtl && (direction === 'AN' || direction === 'EN')) {
      if (numberType === null) numberType = direction
      else if (numberType !== direction) throw new IdnaError('bidi rule 4')
    }
  }
  if (!validEnding) throw new IdnaError(rtl ? 'bidi rule 3' : 'bidi rule 6')
}

// --- Python's punycode codec (RFC 3492) -----------------------------------------------------------

const BASE = 36
const DIGITS = 'abcdefghijklmnopqrstuvwxyz0123456789'

function threshold (j: number, bias: number): number {
  return Math.min(26, Math.max(1, BASE * (j + 1) - bias))
}

function adapt (delta: number, first: boolean, points: number): number {
  delta = first ? Math.floor(delta / 700) : Math.floor(delta / 2)
  delta += Math.floor(delta / points)
  let divisions = 0
  while (delta > 455) {
    delta = Math.floor(delta / 35)
    divisions += 36
  }
  return divisions + Math.floor((36 * delta) / (delta + 38))
}

function punycodeEncode (text: string): string {
  const points = codePoints(text)
  const basic = points.filter(point => point < 0x80).map(point => String.fromCodePoint(point)).join('')
  const extended = [...new Set(points.filter(point => point >= 0x80))].sort((a, b) => a - b)
  const deltas: number[] = []
  let previous = 0x80
  let previousIndex = -1
  for (const char of extended) {
    let delta = (points.filter(point => point < char).length + 1) * (char - previous)
    let index = -1
    for (const point of points) {
      if (point < char) index++
      else if (point === char) {
        index++
        delta += index - previousIndex
        deltas.push(delta - 1)
        previousIndex = index
        delta = 0
      }
    }
    previous = char
  }
  let out = ''
  let bias = 72
  deltas.forEach((delta, count) => {
    let n = delta
    for (let j = 0; ; j++) {
      const t = threshold(j, bias)
      if (n < t) { out += DIGITS[n]; break }
      out += DIGITS[t + ((n - t) % (BASE - t))]
      n = Math.floor((n - t) / (BASE - t))
    }
    bias = adapt(delta, count === 0, basic.length + count + 1)
  })
  return basic === '' ? out : `${basic}-${out}`
}

function punycodeDecode (text: string): string {
  const split = text.lastIndexOf('-')
  const result = split === -1 ? [] : codePoints(text.slice(0, split))
  const extended = (split === -1 ? text : text.slice(split + 1)).toUpperCase()
  let char = 0x80
  let position = -1
  let bias = 72
  let at = 0
  while (at < extended.length) {
    const start = at
    let delta = 0
    let weight = 1
    for (let j = 0; ; j++) {
      if (at >= extended.length) throw new IdnaError('incomplete Punycode')
      const code = extended.charCodeAt(at++)
      const digit = code >= 0x41 && code <= 0x5A ? code - 0x41 : code >= 0x30 && code <= 0x39 ? code - 22 : -1
      if (digit < 0) throw new IdnaError('invalid Punycode digit')
      const t = threshold(j, bias)
      delta += digit * weight
      if (digit < t) break
      weight *= BASE - t
    }
    position += delta + 1
    char += Math.floor(position / (result.length + 1))
    if (char > 0x10FFFF) throw new IdnaError('invalid Punycode character')
    position %= result.length + 1
    result.splice(position, 0, char)
    bias = adapt(delta, start === 0, result.length)
  }
  return String.fromCodePoint(...result)
}
