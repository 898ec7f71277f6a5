// One render reads each block document and variable once. A pool's credentials block is named
// both by a variable's default and, through it, by the job configuration; Prefect's worker reads it
// once for each, moments apart. One read answers both here, and each caller gets its own copy, as
// it would from a read of its own. The documents read are kept, so the launch can record which
// block its GCP identity came from.
import type { PrefectLookups } from '../jobconfig/types.ts'
import type { BlockDocument } from '../prefect/types.ts'

export interface RecordingLookups extends PrefectLookups {
  /** The block documents this render read, each once. */
  documentsRead(): BlockDocument[]
}

export function memoizedLookups (lookups: PrefectLookups): RecordingLookups {
  const reads = new Map<string, Promise<unknown>>()
  const documents: BlockDocument[] = []
  const keep = (document: BlockDocument | null): BlockDocument | null => {
    if (document !== null) documents.push(document)
    return document
  }
  const once = <T>(key: string, read: () => Promise<T>): Promise<T> => {
    let pending = reads.get(key) as Promise<T> | undefined
    if (pending === undefined) {
      pending = read()
      reads.set(key, pending)
    }
    return pending.then(value => structuredClone(value))
  }
  return {
    readBlockDocument: id => once(JSON.stringify(['id', id]), async () => keep(await lookups.readBlockDocument(id))),
    readBlockDocumentByName: (typeSlug, name) =>
      once(JSON.stringify(['name', typeSlug, name]), async () => keep(await lookups.readBlockDocumentByName(typeSlug, name))),
    readVariable: name => once(JSON.stringify(['variable', name]), () => lookups.readVariable(name)),
    documentsRead: () => documents
  }
}
