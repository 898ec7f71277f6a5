// A promise cache with a time to live: concurrent callers share one pending lookup, and a failed
// lookup is forgotten at once so the next caller tries again.

export class TtlCache<T> {
  private readonly ttlMs: number
  private readonly entries = new Map<string, { at: number, value: Promise<T> }>()

  constructor (ttlMs: number) {
    this.ttlMs = ttlMs
  }

  get (key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key)
    if (hit !== undefined && Date.now() - hit.at < this.ttlMs) return hit.value
    const value = load()
    this.entries.set(key, { at: Date.now(), value })
    value.catch(() => { if (this.entries.get(key)?.value === value) this.entries.delete(key) })
    return value
  }
}
