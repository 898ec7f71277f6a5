// Where two JSON values differ, as dotted paths. Setup compares what Prefect holds with what it
// would write: no paths means "unchanged", and the paths tell the user what an update touched
// without printing the values, which may be secret.

/** The paths at which `actual` differs from `desired` (key order ignored), e.g. `variables.properties.region.default`. */
export function changedPaths (actual: unknown, desired: unknown, path = ''): string[] {
  if (isObject(actual) && isObject(desired)) {
    const keys = new Set([...Object.keys(actual), ...Object.keys(desired)])
    return [...keys].sort().flatMap(key => changedPaths(actual[key], desired[key], path === '' ? key : `${path}.${key}`))
  }
  if (Array.isArray(actual) && Array.isArray(desired) && actual.length === desired.length) {
    return actual.flatMap((item, i) => changedPaths(item, desired[i], `${path}[${i}]`))
  }
  return Object.is(actual, desired) ? [] : [path === '' ? '(whole value)' : path]
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
