// A port of python-slugify's default ("legacy") pipeline, which Prefect uses for Cloud Run job
// names (prefect_gcp.utilities.slugify_name) and for the default image tag
// (prefect.utilities.dockerutils.get_prefect_image_name), with text-unidecode's transliteration.

import { HTML4_ENTITY_CODEPOINTS } from './html-entities.ts'
import { textUnidecode } from './text-unidecode.ts'

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
  slug = textUnidecode(slug.normalize('NFKD'))
  slug = decodeEntities(slug).normalize('NFKD')
  if (lowercase) slug = slug.toLowerCase()
  slug = slug.replace(QUOTES, '').replace(COMMA_BETWEEN_DIGITS, '')
  slug = slug.replace(disallowed, '-')
  slug = stripDashes(slug.replace(DUPLICATE_DASHES, '-'))
  return maxLength > 0 ? smartTruncate(slug, maxLength) : slug
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
