// Chooses the store backend from PUSHPOOL_STORE_URL. Each backend is imported only when chosen:
// pg costs ~27 ms and ~10 MB to load, which a SQLite instance's cold start should not pay (and
// node:sqlite is not worth loading for PostgreSQL either).
import type { Store } from './store.ts'

export async function openStore (url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const { openSqliteStore } = await import('./sqlite.ts')
    return openSqliteStore(url.slice('sqlite:'.length))
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { openPostgresStore } = await import('./postgres.ts')
    return await openPostgresStore(url)
  }
  // The URL itself is not echoed: it may hold a password.
  throw new Error('Unsupported PUSHPOOL_STORE_URL scheme: use "sqlite:<path>" or "postgres://user:password@host:port/database"')
}
