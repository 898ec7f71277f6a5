// Bearer-secret check (webhook secrets, admin tokens). Prefect's Webhook block can send only static headers, so a
// shared secret is the strongest proof it can give; several secrets are accepted so one can be
// rotated without downtime. Digests of equal length are compared in constant time, so neither the
// secret nor its length leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto'

const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

export function makeBearerCheck (secrets: readonly string[]): (authorization: string | undefined) => boolean {
  const expected = secrets.map(digest)
  return authorization => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')
    if (match === null) return false
    const presented = digest(match[1])
    // Every candidate is compared, so the time taken does not tell which secret matched.
    let ok = false
    for (const candidate of expected) ok = timingSafeEqual(candidate, presented) || ok
    return ok
  }
}
