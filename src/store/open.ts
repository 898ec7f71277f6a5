// Chooses the store backend from PUSHPOOL_STORE_URL.
import { openSqliteStore } from './sqlite.ts'
import type { Store } from './store.ts'

export async function openStore (url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) return openSqliteStore(url.slice('sqlite:'.length))
  throw new Error(`Unsupported PUSHPOOL_STORE_URL scheme: use "sqlite:<path>"`)
}
