// Preloaded with `node --import` by cold-start-imports.test.ts: records every module the process
// resolves (import and require alike), and Node's internal modules it loaded, and writes the list
// to $RECORD_IMPORTS_FILE when it exits.
import { registerHooks } from 'node:module'
import { writeFileSync } from 'node:fs'

const resolved = new Set<string>()
registerHooks({
  resolve (specifier, context, nextResolve) {
    const result = nextResolve(specifier, context)
    resolved.add(result.url)
    return result
  }
})
process.on('exit', () => {
  const file = process.env.RECORD_IMPORTS_FILE
  // Node's own modules loaded so far (not resolved through the hooks), as `node-internal:<id>`.
  // moduleLoadList is undocumented (and untyped), but has been in every Node release.
  const internal = (process as unknown as { moduleLoadList: string[] }).moduleLoadList.filter(entry => entry.startsWith('NativeModule ')).map(entry => `node-internal:${entry.slice('NativeModule '.length)}`)
  if (file !== undefined) writeFileSync(file, JSON.stringify([...resolved, ...internal]))
})
