import { randomBytes, randomInt } from 'node:crypto'

export function newEtag (): string {
  return randomBytes(9).toString('base64url')
}

const SUFFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'

/** The 5-character suffix Cloud Run appends to execution names (`{job}-{suffix}`). */
export function executionSuffix (): string {
  return Array.from({ length: 5 }, () => SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)]).join('')
}

/** The ID Cloud Tasks gives an unnamed task: a random unsigned 64-bit number in decimal, e.g. `9928316398378024711`. */
export function generatedTaskId (): string {
  return randomBytes(8).readBigUInt64BE().toString()
}
