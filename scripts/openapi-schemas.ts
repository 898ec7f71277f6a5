// `npm run openapi-schemas`: writes src/openapi-schemas.ts, the component schemas of openapi.yaml
// as a module. openapi.yaml stays the one source of the contract; the module spares the server
// importing a YAML parser and parsing the spec on every cold start (~40 ms and ~12 MB).
// test/contract/openapi.test.ts fails when the module is not what this script would write.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parse } from 'yaml'

export const SPEC_FILE = fileURLToPath(new URL('../openapi.yaml', import.meta.url))
export const MODULE_FILE = fileURLToPath(new URL('../src/openapi-schemas.ts', import.meta.url))

/** The module's text for a spec's text. */
export function renderSchemasModule (specText: string): string {
  const schemas = (parse(specText) as { components: { schemas: Record<string, unknown> } }).components.schemas
  return [
    '// Generated from openapi.yaml (components.schemas) by `npm run openapi-schemas`: do not edit, edit',
    '// openapi.yaml and run it. test/contract/openapi.test.ts fails when the two differ.',
    `export const componentSchemaSources: Record<string, Record<string, unknown>> = ${JSON.stringify(schemas, null, 2)}`,
    ''
  ].join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeFileSync(MODULE_FILE, renderSchemasModule(readFileSync(SPEC_FILE, 'utf8')))
  console.log(`wrote ${MODULE_FILE}`)
}
