// Chooses the store backend from PUSHPOOL_STORE_URL.
import { openSqliteStore } from './sqlite.ts'
import { openPostgresStore } from './postgres.ts'
import type { Store } from './store.ts'

export async function openStore (url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) return openSqliteStore(url.slice('sqlite:'.length))
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return await openPostgresStore(url)
  // The URL itself is not echoed: it may hold a password.
  throw new Error('Unsupported PUSHPOOL_STORE_URL scheme: use "sqlite:<path>" or "postgres://user:password@host:port/database"')
}
