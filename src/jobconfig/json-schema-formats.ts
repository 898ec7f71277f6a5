// The JSON Schema formats Prefect's server checks, as it checks them. The server validates a work
// pool's variable defaults with jsonschema's Draft 2020-12 format checker
// (prefect/server/api/validation.py `_get_base_config_defaults` → schema_tools `validate(…,
// raise_on_error=False)`), and drops a default that fails, which also stops `required` from being
// enforced. That checker knows the formats whose libraries are installed beside Prefect: its own
// (email, idn-email, ipv4, ipv6, date, regex, uuid), rfc3339-validator's (date-time, time; a direct
// dependency of Prefect), jsonpointer's (json-pointer, relative-json-pointer; via jsonpatch) and
// idna's (idn-hostname; via httpx). Every other format (uri, hostname, duration, …) passes, as
// in jsonschema when its library is absent. Each check below is a port of the Python one it names
// (jsonschema/_format.py 4.x, Python 3.11's ipaddress, uuid and datetime, rfc3339-validator 0.1.4,
// jsonpointer 3.x, idna 3.x in idna.ts); a value that is not a string always passes.

import { decimalDigitValue, isPythonRegex, pythonRegExp } from './python-regex.ts'

export type FormatCheck = (value: string) => boolean

/** `"@" in instance`. */
const isEmail: FormatCheck = value => value.includes('@')

/** `ipaddress.IPv4Address(value)`: four ASCII decimal octets, no leading zeros, none above 255. */
function isIpv4 (value: string): boolean {
  if (value === '' || value.includes('/')) return false
  const octets = value.split('.')
  return octets.length === 4 && octets.every(octet => /^(?:0|[1-9][0-9]{0,2})$/.test(octet) && Number(octet) <= 255)
}

const HEXTETS = 8

/** `ipaddress.IPv6Address(value)` without a scope id (jsonschema refuses one). */
function isIpv6 (value: string): boolean {
  if (value.includes('/') || value.includes('%')) return false
  if (value === '') return false
  const parts = value.split(':')
  if (parts.length < 3) return false
  if (parts.at(-1)?.includes('.') === true) {
    if (!isIpv4(parts.pop() as string)) return false
    parts.push('0', '0')
  }
  if (parts.length > HEXTETS + 1) return false
  let skip: number | null = null
  for (let i = 1; i < parts.length - 1; i++) {
    if (parts[i] !== '') continue
    if (skip !== null) return false
    skip = i
  }
  let used: string[]
  if (skip !== null) {
    let high = skip
    let low = parts.length - skip - 1
    if (parts[0] === '' && --high !== 0) return false
    if (parts.at(-1) === '' && --low !== 0) return false
    if (HEXTETS - (high + low) < 1) return false
    used = [...parts.slice(0, high), ...parts.slice(parts.length - low)]
  } else {
    if (parts.length !== HEXTETS || parts[0] === '' || parts.at(-1) === '') return false
    used = parts
  }
  return used.every(hextet => /^[0-9a-fA-F]{1,4}$/.test(hextet))
}

/** `^\d{4}-\d{2}-\d{2}$` (ASCII, whole string) and `date.fromisoformat`. */
function isDate (value: string): boolean {
  const match = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/.exec(value)
  return match !== null && isCalendarDate(Number(match[1]), Number(match[2]), Number(match[3]))
}

function isCalendarDate (year: number, month: number, day: number): boolean {
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month)
}

function daysInMonth (year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28
  return [4, 6, 9, 11].includes(month) ? 30 : 31
}

// rfc3339-validator's expression, read as Python reads it (its `$` also matches before a final
// newline, so "…Z\n" passes). Translated on first use, not at every start (a few ms of a cold start).
let rfc3339: RegExp | null = null

/** `validate_rfc3339(value.upper())`: the expression, a year other than 0, a day the month has. */
function isDateTime (value: string): boolean {
  rfc3339 ??= pythonRegExp('(?a)^(\\d{4})-(0[1-9]|1[0-2])-(\\d{2})T(?:[01]\\d|2[0123]):(?:[0-5]\\d):(?:[0-5]\\d)(?:\\.\\d+)?(?:Z|[+-](?:[01]\\d|2[0123]):[0-5]\\d)$')
  const match = rfc3339.exec(value.toUpperCase())
  if (match === null) return false
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])]
  return year !== 0 && day >= 1 && day <= daysInMonth(year, month)
}

/** A date-time on 1970-01-01. */
const isTime: FormatCheck = value => isDateTime(`1970-01-01T${value}`)

/** `UUID(value)`, and hyphens at 8, 13, 18 and 23. */
function isUuid (value: string): boolean {
  const hex = value.replaceAll('urn:', '').replaceAll('uuid:', '').replace(/^[{}]+|[{}]+$/g, '').replaceAll('-', '')
  const chars = [...value]
  return [...hex].length === 32 && isPythonHexInt(hex) && [8, 13, 18, 23].every(position => chars[position] === '-')
}

// Characters `str.isspace()` accepts, which `int()` skips around the digits.
const PY_SPACE = '[\\t\\n\\v\\f\\r\\x1c-\\x1f\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]'
// A digit is any decimal digit (int() reads Unicode ones), or a hex letter.
const HEX_DIGIT = '[\\p{Nd}a-fA-F]'
const PYTHON_HEX_INT = new RegExp(`^${PY_SPACE}*\\+?(?:0[xX]_?)?${HEX_DIGIT}(?:_?${HEX_DIGIT})*${PY_SPACE}*$`, 'u')

/** `int(text, 16)` accepts it (a "-" never reaches here: UUID() removed every one). */
function isPythonHexInt (text: string): boolean {
  return PYTHON_HEX_INT.test(text)
}

/** `jsonpointer.JsonPointer(value)`: "" or "/…", and "~" only as "~0" or "~1". */
function isJsonPointer (value: string): boolean {
  // `(~[^01]|~$)`, with Python's `$`.
  if (/~(?:[^01]|\n?$)/u.test(value)) return false
  return value === '' || value.startsWith('/')
}

// `str.isdigit()`: decimal digits and the other digits (superscripts, circled and the like).
const PY_DIGIT = /[\p{Nd}\u00b2\u00b3\u00b9\u1369-\u1371\u19da\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2468\u2474-\u247c\u2488-\u2490\u24ea\u24f5-\u24fd\u24ff\u2776-\u277e\u2780-\u2788\u278a-\u2792\u{10a40}-\u{10a43}\u{10e60}-\u{10e68}\u{11052}-\u{1105a}\u{1f100}-\u{1f10a}]/u

/**
 * A number without leading zeros, then "#" or a JSON pointer. Python reads the digit before each
 * digit with `int()`, which fails on a non-decimal digit such as "²" and makes the server's check
 * raise; such a value is refused here.
 */
function isRelativeJsonPointer (value: string): boolean {
  const chars = [...value]
  if (chars.length === 0) return false
  let digits = 0
  let rest = ''
  for (const [i, char] of chars.entries()) {
    if (PY_DIGIT.test(char)) {
      if (i > 0) {
        const previous = chars[i - 1]
        if (!/\p{Nd}/u.test(previous) || decimalDigitValue(previous) === 0) return false
      }
      digits++
      continue
    }
    if (digits === 0) return false
    rest = chars.slice(i).join('')
    break
  }
  return rest === '#' || isJsonPointer(rest)
}

const CHECKS: Readonly<Record<string, FormatCheck>> = {
  email: isEmail,
  'idn-email': isEmail,
  ipv4: isIpv4,
  ipv6: isIpv6,
  date: isDate,
  'date-time': isDateTime,
  time: isTime,
  regex: isPythonRegex,
  uuid: isUuid,
  'json-pointer': isJsonPointer,
  'relative-json-pointer': isRelativeJsonPointer
}

/** Every format Prefect's server checks. */
export const PREFECT_SERVER_FORMATS: readonly string[] = [...Object.keys(CHECKS), 'idn-hostname'].sort()

/** The server's check for a format, or null where it makes none. idn-hostname's Unicode tables load on first use. */
export async function prefectServerFormatCheck (format: string): Promise<FormatCheck | null> {
  if (format === 'idn-hostname') return (await import('./idna.ts')).isIdnHostname
  return CHECKS[format] ?? null
}
