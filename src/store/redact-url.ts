// A store URL may carry a password (`postgres://user:password@host/db` or `?password=`). Whatever
// part of it reaches an error message or a log line goes through here first.

const MASK = '***'
const PASSWORD_PARAM = /([?&]password=)([^&#]*)/gi

/** The URL with its password masked; the rest (user, host, database) is kept for diagnosis. */
export function redactUrl (url: string): string {
  const userinfo = userinfoPassword(url)
  const masked = userinfo === null ? url : url.slice(0, userinfo.start) + MASK + url.slice(userinfo.end)
  return masked.replace(PASSWORD_PARAM, `$1${MASK}`)
}

/** `text` with every password of `url` (as written, and percent-decoded) masked. */
export function scrubPasswords (text: string, url: string): string {
  let scrubbed = text
  for (const password of passwordsOf(url)) scrubbed = scrubbed.replaceAll(password, MASK)
  return scrubbed
}

function passwordsOf (url: string): string[] {
  const found: string[] = []
  const userinfo = userinfoPassword(url)
  if (userinfo !== null) found.push(url.slice(userinfo.start, userinfo.end))
  for (const match of url.matchAll(PASSWORD_PARAM)) found.push(match[2])
  const decoded = found.map(p => { try { return decodeURIComponent(p) } catch { return p } })
  // Longest first, so a password that contains another is masked whole.
  return [...new Set([...found, ...decoded])].filter(p => p.length > 0).sort((a, b) => b.length - a.length)
}

// Where the password sits in `scheme://user:password@host…`. The last `@` before the query ends
// the userinfo, so a password with an unencoded `@` is still masked whole.
function userinfoPassword (url: string): { start: number, end: number } | null {
  const schemeEnd = url.indexOf('://')
  if (schemeEnd === -1) return null
  const authorityStart = schemeEnd + 3
  const query = url.indexOf('?', authorityStart)
  const at = url.lastIndexOf('@', query === -1 ? url.length : query)
  if (at < authorityStart) return null
  const colon = url.indexOf(':', authorityStart)
  if (colon === -1 || colon > at) return null
  return { start: colon + 1, end: at }
}
