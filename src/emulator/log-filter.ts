// The part of the Logging query language (https://cloud.google.com/logging/docs/view/logging-query-language)
// a client asking for one execution's lines sends: comparisons of LogEntry fields (=, !=, <, <=, >, >=,
// : has, =~ and !~ regex, :* presence), AND (or juxtaposition), OR, NOT (or a leading -), parentheses,
// and log_id("…"). As documented, NOT binds tightest, then OR, then AND: `a OR NOT b AND c` is
// `(a OR (NOT b)) AND c`; string comparisons are case-insensitive; severities compare by rank and
// timestamps as times. Anything else (global text search, value groups, other functions) is refused
// with INVALID_ARGUMENT rather than matched loosely.
import { invalidArgument, type RpcError } from './rpc-error.ts'

export type LogEntryFields = Record<string, unknown>
export type LogFilter = (entry: LogEntryFields) => boolean

const SEVERITIES = ['DEFAULT', 'DEBUG', 'INFO', 'NOTICE', 'WARNING', 'ERROR', 'CRITICAL', 'ALERT', 'EMERGENCY']
export const SEVERITY_RANK: Record<string, number> = Object.fromEntries(SEVERITIES.map((name, i) => [name, i * 100]))

const MAX_FILTER_LENGTH = 20_000
const OPERATORS = ['!=', '<=', '>=', '=~', '!~', '=', '<', '>', ':'] as const
type Operator = typeof OPERATORS[number]

/** The LogEntry fields filters may name in snake_case as well. */
const SNAKE_FIELDS: Record<string, string> = {
  log_name: 'logName', text_payload: 'textPayload', json_payload: 'jsonPayload', proto_payload: 'protoPayload',
  receive_timestamp: 'receiveTimestamp', insert_id: 'insertId'
}

interface Token {
  kind: 'word' | 'string' | 'op' | '(' | ')'
  text: string
  at: number
}

export function parseLogFilter (source: string): LogFilter {
  if (source.length > MAX_FILTER_LENGTH) throw invalidArgument(`The filter is longer than ${MAX_FILTER_LENGTH} characters.`)
  const parser = new Parser(source, tokenize(source))
  if (parser.done()) return () => true
  const filter = parser.expression()
  if (!parser.done()) throw parser.unexpected()
  return filter
}

class Parser {
  readonly #source: string
  readonly #tokens: Token[]
  #next = 0

  constructor (source: string, tokens: Token[]) {
    this.#source = source
    this.#tokens = tokens
  }

  done (): boolean {
    return this.#next >= this.#tokens.length
  }

  /** Conjunction of disjunctions; AND may be left out between terms. */
  expression (): LogFilter {
    const terms = [this.#disjunction()]
    while (!this.done() && this.#peek()?.kind !== ')') {
      if (this.#isKeyword('AND')) this.#next++
      terms.push(this.#disjunction())
    }
    return terms.length === 1 ? terms[0] : entry => terms.every(term => term(entry))
  }

  unexpected (token = this.#tokens[this.#next]): RpcError {
    const at = token?.at ?? this.#source.length
    const before = this.#source.slice(0, at)
    const line = before.split('\n').length
    const column = at - before.lastIndexOf('\n')
    return invalidArgument(`Unparseable filter: syntax error at line ${line}, column ${column}, token '${token?.text ?? '<end>'}'`)
  }

  #disjunction (): LogFilter {
    const terms = [this.#unary()]
    while (this.#isKeyword('OR')) {
      this.#next++
      terms.push(this.#unary())
    }
    return terms.length === 1 ? terms[0] : entry => terms.some(term => term(entry))
  }

  #unary (): LogFilter {
    const token = this.#peek()
    if (this.#isKeyword('NOT')) {
      this.#next++
      const inner = this.#unary()
      return entry => !inner(entry)
    }
    if (token?.kind === 'word' && token.text.startsWith('-') && token.text.length > 1) {
      this.#tokens[this.#next] = { ...token, text: token.text.slice(1), at: token.at + 1 }
      const inner = this.#unary()
      return entry => !inner(entry)
    }
    return this.#primary()
  }

  #primary (): LogFilter {
    const token = this.#take()
    if (token.kind === '(') {
      const inner = this.expression()
      if (this.#take().kind !== ')') throw this.unexpected(this.#tokens[this.#next - 1])
      return inner
    }
    if (token.kind !== 'word') throw this.unexpected(token)
    if (token.text === 'log_id' && this.#peek()?.kind === '(') return this.#logId()
    const path = fieldPath(token, this)
    const op = this.#take()
    if (op.kind !== 'op') throw this.unexpected(op)
    const value = this.#take()
    if (value.kind !== 'string' && value.kind !== 'word') throw this.unexpected(value)
    return comparison(path, op.text as Operator, value, this)
  }

  /** log_id("run.googleapis.com/stdout") matches logName ending in the URL-encoded log ID. */
  #logId (): LogFilter {
    this.#take()
    const id = this.#take()
    if (id.kind !== 'string' || this.#take().kind !== ')') throw this.unexpected(id)
    const suffix = `/logs/${encodeURIComponent(id.text)}`
    return entry => typeof entry.logName === 'string' && entry.logName.endsWith(suffix)
  }

  #isKeyword (word: string): boolean {
    const token = this.#peek()
    return token?.kind === 'word' && token.text === word
  }

  #peek (): Token | undefined {
    return this.#tokens[this.#next]
  }

  #take (): Token {
    const token = this.#tokens[this.#next++]
    if (!token) throw this.unexpected()
    return token
  }
}

/** `resource.labels.job_name`, `labels."run.googleapis.com/execution_name"` → path segments. */
function fieldPath (token: Token, parser: Parser): string[] {
  const segments: string[] = []
  const text = token.text
  let i = 0
  while (i < text.length) {
    if (text[i] === '"') {
      const end = text.indexOf('"', i + 1)
      if (end === -1) throw parser.unexpected(token)
      segments.push(text.slice(i + 1, end))
      i = end + 1
    } else {
      const end = text.indexOf('.', i)
      segments.push(text.slice(i, end === -1 ? text.length : end))
      i = end === -1 ? text.length : end
    }
    if (i < text.length) {
      if (text[i] !== '.') throw parser.unexpected(token)
      i++
    }
  }
  if (segments.length === 0 || segments.some(segment => segment === '')) throw parser.unexpected(token)
  segments[0] = SNAKE_FIELDS[segments[0]] ?? segments[0]
  return segments
}

function comparison (path: string[], op: Operator, valueToken: Token, parser: Parser): LogFilter {
  const value = valueToken.text
  const read = (entry: LogEntryFields): unknown => path.reduce<unknown>((node, key) =>
    node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined, entry)
  if (op === ':' && value === '*' && valueToken.kind === 'word') return entry => read(entry) !== undefined
  if (op === '=~' || op === '!~') {
    let pattern: RegExp
    try {
      pattern = new RegExp(value)
    } catch {
      throw invalidArgument(`Invalid regular expression '${value}' in the filter.`)
    }
    return entry => {
      const field = read(entry)
      if (field === undefined) return false
      return pattern.test(String(field)) === (op === '=~')
    }
  }
  const field = path.join('.')
  const compare = field === 'severity'
    ? severityComparator(value, valueToken, parser)
    : field === 'timestamp' || field === 'receiveTimestamp'
      ? timeComparator(value, valueToken, parser)
      : textComparator(value)
  return entry => {
    const actual = field === 'severity' ? read(entry) ?? 'DEFAULT' : read(entry)
    if (actual === undefined || actual === null) return false
    if (op === ':') return typeof actual !== 'object' && String(actual).toLowerCase().includes(value.toLowerCase())
    const order = compare(actual)
    if (order === undefined) return false
    switch (op) {
      case '=': return order === 0
      case '!=': return order !== 0
      case '<': return order < 0
      case '<=': return order <= 0
      case '>': return order > 0
      default: return order >= 0
    }
  }
}

type Comparator = (actual: unknown) => number | undefined

function severityComparator (value: string, token: Token, parser: Parser): Comparator {
  const wanted = /^\d+$/.test(value) ? Number(value) : SEVERITY_RANK[value.toUpperCase()]
  if (wanted === undefined) throw parser.unexpected(token)
  return actual => (SEVERITY_RANK[String(actual).toUpperCase()] ?? 0) - wanted
}

function timeComparator (value: string, token: Token, parser: Parser): Comparator {
  const wanted = timestampMicros(value)
  if (wanted === undefined) throw parser.unexpected(token)
  return actual => {
    const micros = timestampMicros(String(actual))
    return micros === undefined ? undefined : Math.sign(Number(micros - wanted))
  }
}

function textComparator (value: string): Comparator {
  const number = Number(value)
  return actual => {
    if (typeof actual === 'number' && value.trim() !== '' && !Number.isNaN(number)) return Math.sign(actual - number)
    if (typeof actual === 'object') return undefined
    const text = String(actual).toLowerCase()
    const wanted = value.toLowerCase()
    return text === wanted ? 0 : text < wanted ? -1 : 1
  }
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i

/** An RFC 3339 time in microseconds since the epoch; Date.parse alone would drop the microseconds. */
export function timestampMicros (text: string): bigint | undefined {
  const m = RFC3339.exec(text)
  if (!m) return undefined
  const ms = Date.parse(`${m[1]}${m[3]}`)
  if (Number.isNaN(ms)) return undefined
  return BigInt(ms) * 1000n + BigInt((m[2] ?? '').padEnd(6, '0').slice(0, 6))
}

function tokenize (source: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < source.length) {
    const c = source[i]
    if (/\s/.test(c)) {
      i++
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c, text: c, at: i++ })
    } else if (c === '"') {
      const { text, end } = quoted(source, i)
      tokens.push({ kind: 'string', text, at: i })
      i = end
    } else {
      const op = OPERATORS.find(candidate => source.startsWith(candidate, i))
      if (op) {
        tokens.push({ kind: 'op', text: op, at: i })
        i += op.length
        continue
      }
      // A word runs to whitespace, a parenthesis or an operator; quoted path segments belong to it.
      const start = i
      while (i < source.length && !/[\s()]/.test(source[i]) && !OPERATORS.some(candidate => source.startsWith(candidate, i))) {
        i = source[i] === '"' ? quoted(source, i).end : i + 1
      }
      tokens.push({ kind: 'word', text: source.slice(start, i), at: start })
    }
  }
  return tokens
}

function quoted (source: string, start: number): { text: string, end: number } {
  let text = ''
  let i = start + 1
  while (i < source.length && source[i] !== '"') {
    if (source[i] === '\\' && i + 1 < source.length) i++
    text += source[i++]
  }
  if (i >= source.length) throw invalidArgument(`Unparseable filter: unterminated string starting at column ${start + 1}`)
  return { text, end: i + 1 }
}
