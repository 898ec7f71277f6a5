// The shipped template's variables validators, compiled at build time (scripts/precompile-schemas.ts):
// a pool that `pushpool setup` made finds them by key whatever its defaults, and each judges
// variables exactly as the validator a dispatch compiles from the same step.
import t from 'tap'
import { createRequire } from 'node:module'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import { compilePlan, variablesAjvOptions, type CompileStep } from '../../src/jobconfig/validate-variables.ts'
import { PYTHON_PATTERNS } from '../../src/jobconfig/python-regex.ts'
import { withoutAnnotations } from '../../src/jobconfig/schema-annotations.ts'
import { standaloneVariablesValidators } from '../../scripts/precompile-schemas.ts'
import { defaultCloudRunV2Template } from '../../src/setup/work-pool.ts'

const shipped = defaultCloudRunV2Template() as { variables: Record<string, any> }
const keysOf = async (variables: Record<string, unknown>): Promise<string[]> => Object.values(await compilePlan(variables)).map(step => step.key)

/** What a dispatch compiles for a step that has no precompiled validator. */
function compiledAtDispatch (step: CompileStep): ValidateFunction {
  const ajv = new Ajv2020(variablesAjvOptions(step.checked))
  for (const [format, check] of Object.entries(step.formats)) ajv.addFormat(format, check)
  return ajv.compile(step.schema)
}

/** A standalone validator's code, run as the bundle's module runs it. */
function load (code: string): ValidateFunction {
  const module = { exports: {} as ValidateFunction }
  new Function('module', 'exports', 'require', 'pythonPattern', code)(module, module.exports, createRequire(import.meta.url), PYTHON_PATTERNS)
  return module.exports
}

t.test('a pool with its own defaults and descriptions finds the shipped template\'s validators; another variable does not', async t => {
  const setUp = structuredClone(shipped.variables)
  setUp.properties.image.default = 'us-docker.pkg.dev/proj/flows/hello:1'
  setUp.properties.region.default = 'europe-west1'
  setUp.properties.credentials.default = { $ref: { block_document_id: '5f0c1a8e-3d2b-4c1e-9a7f-1b2c3d4e5f60' } }
  setUp.properties.cpu.description = 'CPU for the job'
  t.same(await keysOf(setUp), await keysOf(shipped.variables), 'the same three keys')
  const grown = structuredClone(shipped.variables)
  grown.properties.extra = { type: 'string' }
  t.notSame((await keysOf(grown))[1], (await keysOf(shipped.variables))[1], 'a schema with another variable is compiled at dispatch')
  const generated = await standaloneVariablesValidators(shipped.variables)
  t.same(generated.map(g => g.key), await keysOf(shipped.variables), 'the build precompiles every step of the shipped template')
})

t.test('annotations go; names, enum and const stay', async t => {
  const schema = {
    title: 'T',
    description: 'd',
    properties: { title: { type: 'string', default: 'x', description: 'a variable named title' }, default: { const: { title: 'kept', default: 1 } } },
    definitions: { Block: { title: 'Block', anyOf: [{ type: 'string', examples: ['a'] }], enum: [{ description: 'kept' }] } },
    required: ['title']
  }
  t.same(withoutAnnotations(schema), {
    properties: { title: { type: 'string' }, default: { const: { title: 'kept', default: 1 } } },
    definitions: { Block: { anyOf: [{ type: 'string' }], enum: [{ description: 'kept' }] } },
    required: ['title']
  })
})

t.test('each precompiled validator judges variables as the one compiled at dispatch: the verdict and every error', async t => {
  const plan = await compilePlan(shipped.variables)
  const generated = new Map((await standaloneVariablesValidators(shipped.variables)).map(g => [g.key, load(g.code)]))
  const cases: Array<Record<string, unknown>> = [
    {},
    { image: 'prefecthq/prefect:3-latest', region: 'us-central1', cpu: '1', memory: '512Mi', timeout: 600, env: { A: 'b' } },
    { memory: '2G' },
    { memory: '2GB' },
    { memory: 512 },
    { timeout: 604801 },
    { timeout: 1.5 },
    { max_retries: '3' },
    { keep_job: 'yes' },
    { env: ['A=b'] },
    { args: 'run' },
    { cpu: null, memory: null, region: null },
    { labels: { team: 'data' }, command: ['python', 'x.py'], launch_stage: 'BETA' },
    { credentials: { $ref: { block_document_id: '5f0c1a8e-3d2b-4c1e-9a7f-1b2c3d4e5f60' } } },
    { credentials: { $ref: 'not-a-uuid' } },
    { credentials: { project: 'p', service_account_info: { type: 'service_account' } } },
    { env_from_secrets: { TOKEN: { secret: 's', version: 'latest' } } },
    { env_from_secrets: { TOKEN: { version: 'latest' } } },
    { unknown_variable: true }
  ]
  for (const [name, step] of Object.entries(plan)) {
    const precompiled = generated.get(step.key)
    if (precompiled === undefined) {
      t.fail(`${name}: no precompiled validator`)
      continue
    }
    const reference = compiledAtDispatch(step)
    if (name === 'variables') t.ok(cases.filter(variables => !reference(variables)).length >= 8, 'the cases include variables the pool refuses')
    for (const variables of cases) {
      const input = name === 'defaults' ? Object.fromEntries(Object.entries(variables).slice(0, 1)) : variables
      t.same({ valid: precompiled(input), errors: precompiled.errors }, { valid: reference(input), errors: reference.errors }, `${name}: ${JSON.stringify(input)}`)
    }
  }
})
