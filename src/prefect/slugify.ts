// A port of python-slugify's default ("legacy") pipeline, which Prefect uses for Cloud Run job
// names (prefect_gcp.utilities.slugify_name) and for the default image tag
// (prefect.utilities.dockerutils.get_prefect_image_name).
//
// One deliberate approximation: python-slugify transliterates non-ASCII text with text-unidecode,
// a 65,535-entry table that pushpool does not ship. Here, after NFKD normalisation (which already
// turns "é" into "e" + a combining accent):
//   - ASCII is kept;
//   - the Latin-1 and Latin Extended-A letters and signs that do not decompose (ß, æ, ø, ł, ©, …)
//     use text-unidecode's own transliteration, so Western and Central European names slug exactly;
//   - combining marks, control and format characters and characters outside the BMP (emoji) are
//     dropped, as text-unidecode does;
//   - every other character becomes a separator, where text-unidecode would often spell it out
//     (Greek, Cyrillic, CJK: "日本" → "ri-ben"). Only the readable part of a job name can differ.

import { HTML4_ENTITY_CODEPOINTS } from './render/html-entities.ts'

/** text-unidecode's output for the non-decomposing Latin-1/Latin Extended-A characters it spells with letters or digits. */
const LATIN_TRANSLITERATIONS: Readonly<Record<string, string>> = {
  '\u00a2': 'C/', '\u00a3': 'PS', '\u00a5': 'Y=', '\u00a7': 'SS', '\u00a9': '(c)', '\u00ae': '(r)', '\u00b0': 'deg',
  '\u00b6': 'P', '\u00c6': 'AE', '\u00d0': 'D', '\u00d7': 'x', '\u00d8': 'O', '\u00de': 'Th', '\u00df': 'ss',
  '\u00e6': 'ae', '\u00f0': 'd', '\u00f8': 'o', '\u00fe': 'th', '\u0110': 'D', '\u0111': 'd', '\u0126': 'H',
  '\u0127': 'h', '\u0131': 'i', '\u0138': 'k', '\u0141': 'L', '\u0142': 'l', '\u014a': 'ng', '\u014b': 'NG',
  '\u0152': 'OE', '\u0153': 'oe', '\u0166': 'T', '\u0167': 't'
}

const DROPPED_CHARACTER = /[\p{M}\p{Cc}\p{Cf}]/u
const QUOTES = /'+/g
const NAMED_ENTITY = new RegExp(`&(${Object.keys(HTML4_ENTITY_CODEPOINTS).join('|')});`, 'g')
const DECIMAL_ENTITY = /&#(\d+);/g
const HEX_ENTITY = /&#x([\da-fA-F]+);/g
const COMMA_BETWEEN_DIGITS = /(?<=\d),(?=\d)/g
const DUPLICATE_DASHES = /-{2,}/g
/** python-slugify's default for `regex_pattern`: everything but ASCII letters, digits and dashes. */
const DISALLOWED_BY_DEFAULT = /[^-a-zA-Z0-9]+/gu

export interface SlugifyOptions {
  /** python-slugify `max_length`; 0 means unlimited. */
  maxLength?: number
  /** python-slugify `lowercase`; default true. */
  lowercase?: boolean
  /** python-slugify `regex_pattern`: runs of disallowed characters, each replaced by one dash. Must be global. */
  disallowed?: RegExp
}

export function slugify (text: string, options: SlugifyOptions = {}): string {
  const { maxLength = 0, lowercase = true, disallowed = DISALLOWED_BY_DEFAULT } = options
  let slug = text.replace(QUOTES, '-')
  slug = transliterate(slug.normalize('NFKD'))
  slug = decodeEntities(slug).normalize('NFKD')
  if (lowercase) slug = slug.toLowerCase()
  slug = slug.replace(QUOTES, '').replace(COMMA_BETWEEN_DIGITS, '')
  slug = slug.replace(disallowed, '-')
  slug = stripDashes(slug.replace(DUPLICATE_DASHES, '-'))
  return maxLength > 0 ? smartTruncate(slug, maxLength) : slug
}

function transliterate (text: string): string {
  let out = ''
  for (const char of text) {
    const codePoint = char.codePointAt(0) as number
    if (codePoint < 0x80) out += char
    else if (char in LATIN_TRANSLITERATIONS) out += LATIN_TRANSLITERATIONS[char]
    else if (codePoint > 0xffff || DROPPED_CHARACTER.test(char)) continue
    else out += ' '
  }
  return out
}

// python-slugify's legacy mode decodes each kind of numeric reference all-or-nothing: one
// out-of-range reference leaves every reference of that kind undecoded.
function decodeEntities (text: string): string {
  let out = text.replace(NAMED_ENTITY, (_, name: string) => String.fromCodePoint(HTML4_ENTITY_CODEPOINTS[name]))
  out = decodeNumericReferences(out, DECIMAL_ENTITY, 10)
  return decodeNumericReferences(out, HEX_ENTITY, 16)
}

function decodeNumericReferences (text: string, pattern: RegExp, radix: number): string {
  const codePoints = [...text.matchAll(pattern)].map(match => parseInt(match[1], radix))
  if (codePoints.some(codePoint => codePoint > 0x10ffff)) return text
  return text.replace(pattern, (_, digits: string) => String.fromCodePoint(parseInt(digits, radix)))
}

function smartTruncate (slug: string, maxLength: number): string {
  return slug.length < maxLength ? slug : stripDashes(slug.slice(0, maxLength))
}

function stripDashes (text: string): string {
  return text.replace(/^-+|-+$/g, '')
}
