// Blanks secrets in a container's log lines before they are copied anywhere (Prefect's run logs): the
// values the caller knows to be secret, bearer and Basic credentials, Google access tokens, URL
// passwords, PEM private keys (whole, or spread over several lines), and the value of any
// `NAME=value` / `NAME: value` / `"name": "value"` whose name says it holds a secret. A redactor keeps
// state across lines, so feed it one execution's lines oldest first.

export const REDACTED = '[redacted]'

/** Known values shorter than this are left alone: blanking every "abc" would ruin the lines and hide little. */
const MIN_SECRET_LENGTH = 6
const SECRET_NAME = String.raw`[A-Za-z0-9_.-]*?(?:TOKEN|SECRET|PASSWORD|PASSWD|AUTH_STRING|API_KEY|APIKEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIALS?)[A-Za-z0-9_.-]*`
const SECRET_ASSIGNMENT = new RegExp(String.raw`(["']?)\b(${SECRET_NAME})\1(\s*[=:]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|(?:\[redacted\]|[^\s,;&'"})\]>])+)`, 'gi')
const BEARER = /\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi
const GOOGLE_ACCESS_TOKEN = /\bya29\.[A-Za-z0-9._-]+/g
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^@\s/]+@/gi
const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----/
const PEM_END = /-----END [A-Z0-9 ]*PRIVATE KEY-----/

export type LineRedactor = (text: string) => string

export function lineRedactor (secrets: readonly string[] = []): LineRedactor {
  // Longest first, so a secret containing a shorter one is blanked whole.
  const known = [...new Set(secrets)].filter(s => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length)
  let insidePem = false
  return text => {
    let out = text
    for (const secret of known) out = out.split(secret).join(REDACTED)
    ;[out, insidePem] = redactPem(out, insidePem)
    return out
      .replace(SECRET_ASSIGNMENT, (_, quote: string, name: string, separator: string, value: string) =>
        `${quote}${name}${quote}${separator}${value.startsWith('"') ? `"${REDACTED}"` : value.startsWith("'") ? `'${REDACTED}'` : REDACTED}`)
      .replace(BEARER, `$1$2${REDACTED}`)
      .replace(GOOGLE_ACCESS_TOKEN, REDACTED)
      .replace(URL_PASSWORD, `$1${REDACTED}@`)
  }
}

/** A key's body, from BEGIN to END, even when the key spans lines (a PEM printed raw) or one line (JSON with \n escapes). */
function redactPem (text: string, inside: boolean): [string, boolean] {
  let rest = text
  let out = ''
  for (;;) {
    if (inside) {
      const end = PEM_END.exec(rest)
      if (end === null) return [out + REDACTED, true]
      out += REDACTED + end[0]
      rest = rest.slice(end.index + end[0].length)
      inside = false
    }
    const begin = PEM_BEGIN.exec(rest)
    if (begin === null) return [out + rest, false]
    out += rest.slice(0, begin.index + begin[0].length)
    rest = rest.slice(begin.index + begin[0].length)
    inside = true
  }
}
