// Preloaded with `node --import` by cold-start-imports.test.ts: records every module the process
// resolves (import and require alike) and writes the list to $RECORD_IMPORTS_FILE when it exits.
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
  if (file !== undefined) writeFileSync(file, JSON.stringify([...resolved]))
})
