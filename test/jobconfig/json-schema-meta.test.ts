// The production bundle checks pool schemas with the meta-schema validator that
// scripts/precompile-schemas.ts generated (src/jobconfig/json-schema-meta.ts): it must judge every
// schema as the one ajv compiles from the sources, and report the same errors.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { ValidateFunction } from 'ajv/dist/2020.js'
import { metaSchemaValidatorModule } from '../../scripts/precompile-schemas.ts'
import { metaSchemaValidator } from '../../src/jobconfig/json-schema-meta.ts'
import { loadTemplate } from '../conformance/fixtures.ts'
import { temporaryDir } from '../production/artifact.ts'

const REPO = fileURLToPath(new URL('../..', import.meta.url))

const SCHEMAS: Array<[string, unknown]> = [
  ['cloud-run-v2 default', loadTemplate('cloud-run-v2.default').variables],
  ['cloud-run (v1) default', loadTemplate('cloud-run.default').variables],
  ['empty', {}],
  ['a type that is no type', { type: 'object', properties: { team: { type: 'text' } } }],
  ['required not a list', { type: 'object', required: 'image' }],
  ['deep in properties and $defs', { properties: { a: { properties: { b: { minimum: 'x' } } } }, $defs: { c: { enum: 5 } } }],
  ['tuple items (draft 7, not 2020-12)', { properties: { pair: { type: 'array', items: [{ type: 'string' }, { type: 'integer' }] } } }],
  ['a pattern, formats and a block reference', { properties: { memory: { type: 'string', pattern: '^\\d+Mi$' }, at: { type: 'string', format: 'date-time' }, credentials: { allOf: [{ $ref: '#/definitions/GcpCredentials' }] } }, definitions: { GcpCredentials: { type: 'object', block_type_slug: 'gcp-credentials' } } }],
  ['not an object', 'schema'],
  ['properties a list', { properties: [] }]
]

t.test('the generated meta-schema validator judges schemas as ajv\'s, with the same errors', async t => {
  // The generated code requires ajv's runtime, as the bundle does, from the repository's node_modules.
  const dir = temporaryDir(t, 'meta-', join(REPO, 'test', 'jobconfig'))
  const file = join(dir, 'meta.mjs')
  writeFileSync(file, "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);\n" + metaSchemaValidatorModule())
  const generated = (await import(pathToFileURL(file).href) as { metaSchemaValidator: () => ValidateFunction }).metaSchemaValidator()
  const compiled = metaSchemaValidator()
  t.not(generated, compiled)
  let refused = 0
  for (const [name, schema] of SCHEMAS) {
    const verdict = compiled(schema)
    t.equal(generated(schema), verdict, `${name}: ${verdict ? 'valid' : 'invalid'}`)
    t.same(generated.errors ?? null, compiled.errors ?? null, `${name}: the same errors`)
    if (!verdict) refused++
  }
  t.equal(refused, 6, 'the invalid ones are refused')
})
