// One render reads each block document and variable once. A pool's credentials block is named
// both by a variable's default and, through it, by the job configuration; Prefect's worker reads it
// once for each, moments apart. One read answers both here, and each caller gets its own copy, as
// it would from a read of its own.
import type { PrefectLookups } from '../jobconfig/types.ts'

export function memoizedLookups (lookups: PrefectLookups): PrefectLookups {
  const reads = new Map<string, Promise<unknown>>()
  const once = <T>(key: string, read: () => Promise<T>): Promise<T> => {
    let pending = reads.get(key) as Promise<T> | undefined
    if (pending === undefined) {
      pending = read()
      reads.set(key, pending)
    }
    return pending.then(value => structuredClone(value))
  }
  return {
    readBlockDocument: id => once(JSON.stringify(['id', id]), () => lookups.readBlockDocument(id)),
    readBlockDocumentByName: (typeSlug, name) =>
      once(JSON.stringify(['name', typeSlug, name]), () => lookups.readBlockDocumentByName(typeSlug, name)),
    readVariable: name => once(JSON.stringify(['variable', name]), () => lookups.readVariable(name))
  }
}
