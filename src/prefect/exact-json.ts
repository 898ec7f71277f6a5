// JSON as Python reads it, for the Prefect documents that pushpool renders into jobs (work pool
// templates, job variables, flow-run parameters, block data, variable values). Prefect's server and
// worker are Python: a JSON integer is an exact int of any size, and a number written with a
// fraction or an exponent is a float even when its value is whole. The worker splices values into
// the job with Python's str(), so 12345678901234567890 stays all digits and 1.0 stays "1.0", where
// JSON.parse would give 12345678901234567000 and 1.
//
// The two numbers JSON.parse cannot keep get their own JavaScript representations, both of which
// survive structuredClone:
//   - an integer beyond ±(2^53 − 1): a bigint;
//   - a float whose value is whole (1.0, 1e5, 2.5e20): a boxed Number, `Object(1)`.
// Every other number is the plain number JSON.parse gives, which is exactly Python's value.

type Reviver = (this: unknown, key: string, value: unknown, context: { source?: string }) => unknown
// Both halves of "JSON.parse source text access" (Node 21+), which the es2024 lib does not declare.
const parseWithSource = JSON.parse as (text: string, reviver: Reviver) => unknown
const rawJson = (JSON as unknown as { rawJSON: (text: string) => unknown }).rawJSON

/** A whole-valued float, as `parseExactJson` represents it. */
export type WholeFloat = Number

export function isWholeFloat (value: unknown): value is WholeFloat {
  return value instanceof Number
}

export function wholeFloat (value: number): WholeFloat {
  return Object(value) as WholeFloat
}

const FLOAT_SYNTAX = /[.eE]/

export function parseExactJson (text: string): unknown {
  return parseWithSource(text, (_key, value, context) => {
    if (typeof value !== 'number' || context.source === undefined) return value
    if (FLOAT_SYNTAX.test(context.source)) return Number.isInteger(value) ? wholeFloat(value) : value
    return Number.isSafeInteger(value) ? value : BigInt(context.source)
  })
}

/** JSON text for a value that may hold exact numbers: a bigint prints all its digits, a whole float keeps its ".0". */
export function stringifyExactJson (value: unknown): string {
  return JSON.stringify(value, function (this: unknown, key: string, item: unknown) {
    if (typeof item === 'bigint') return rawJson(item.toString())
    // The replacer sees a boxed Number already unboxed; its holder still has the box.
    const original = key === '' ? value : (this as Record<string, unknown>)[key]
    if (isWholeFloat(original)) return rawJson(wholeFloatJson(original.valueOf()))
    return item
  })
}

function wholeFloatJson (value: number): string {
  if (!Number.isFinite(value)) return String(value)
  return Number.isSafeInteger(value) ? `${Object.is(value, -0) ? '-0' : String(value)}.0` : value.toExponential()
}

/** The same value with JavaScript numbers only, for code that never prints numbers (schema checks, gRPC messages). */
export function toPlainJson (value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value)
  if (isWholeFloat(value)) return value.valueOf()
  if (Array.isArray(value)) return value.map(toPlainJson)
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toPlainJson(item)]))
  }
  return value
}

/**
 * A parsed Prefect document whose `exactFields` keep exact numbers and whose other fields are
 * plain: the rest of pushpool reads those as ordinary JSON (counts, timestamps, state details).
 */
export function withExactFields<T> (document: unknown, exactFields: readonly string[]): T {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) return toPlainJson(document) as T
  return Object.fromEntries(Object.entries(document).map(([key, item]) =>
    [key, exactFields.includes(key) ? item : toPlainJson(item)])) as T
}
