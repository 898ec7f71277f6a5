// Python's `shlex.split(s)` (POSIX mode, no comments), which Prefect's Cloud Run workers use to
// turn a `command` or `args` string into an argv list. A port of the lexer states of CPython's
// Lib/shlex.py (with `whitespace_split` and no comments), so quoting and escaping behave identically:
// backslash escapes anything outside quotes, only `"` and `\` inside double quotes, nothing
// inside single quotes, and `''` yields an empty argument.

const WHITESPACE = ' \t\r\n'
const ESCAPE = '\\'

export class ShlexError extends Error {}

/** Lexer states: between tokens, in a word, in single or double quotes, after a backslash. */
type LexState = 'between' | 'word' | '\'' | '"' | 'escape'

export function shlexSplit (text: string): string[] {
  const chars = [...text]
  let position = 0
  const tokens: string[] = []
  let atEnd = false

  while (!atEnd) {
    let state: LexState = 'between'
    let token = ''
    let quoted = false
    // Where an escape returns to: a word, or the double quotes it appeared in.
    let escapeReturn: 'word' | '"' = 'word'
    for (;;) {
      const next = position < chars.length ? chars[position++] : ''
      if (state === 'escape') {
        if (next === '') throw new ShlexError('No escaped character')
        // Inside double quotes only the quote itself or the escape character may be escaped.
        if (escapeReturn === '"' && next !== ESCAPE && next !== '"') token += ESCAPE
        token += next
        state = escapeReturn
      } else if (state === '\'' || state === '"') {
        quoted = true
        if (next === '') throw new ShlexError('No closing quotation')
        if (next === state) state = 'word'
        else if (next === ESCAPE && state === '"') { escapeReturn = '"'; state = 'escape' } else token += next
      } else if (next === '') {
        atEnd = true
        break
      } else if (WHITESPACE.includes(next)) {
        // A word always holds a character or was quoted, so whitespace ends it.
        if (state === 'word') break
      } else if (next === '\'' || next === '"') {
        state = next
      } else if (next === ESCAPE) {
        escapeReturn = 'word'
        state = 'escape'
      } else {
        token += next
        state = 'word'
      }
    }
    if (token !== '' || quoted) tokens.push(token)
  }
  return tokens
}
