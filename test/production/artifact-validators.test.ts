// The artifact carries the shipped template's variables validators as code (scripts/build.ts puts
// them in place of src/jobconfig/precompiled-validators.ts): its module finds one for every step of
// a pool `pushpool setup` made, and they run in the artifact with its Python pattern engine.
import t from 'tap'
import { builtArtifact, importChunk } from './artifact.ts'
import { compilePlan } from '../../src/jobconfig/validate-variables.ts'
import { defaultCloudRunV2Template } from '../../src/setup/work-pool.ts'

t.test('the artifact\'s precompiled validators answer every step of the shipped template, and judge as a dispatch would', async t => {
  const dist = await builtArtifact(t)
  const chunk = await importChunk<{ precompiledValidator: (key: string) => ((data: unknown) => boolean) | undefined }>(dist, 'precompiled-validators')
  if (chunk === undefined) return t.fail('no precompiled-validators chunk in the artifact')
  const { precompiledValidator } = chunk
  const shipped = defaultCloudRunV2Template() as { variables: Record<string, any> }
  shipped.variables.properties.image.default = 'us-docker.pkg.dev/proj/flows/hello:1'
  const plan = await compilePlan(shipped.variables)
  for (const [name, step] of Object.entries(plan)) t.type(precompiledValidator(step.key), 'function', `${name} is precompiled`)
  const variables = precompiledValidator(plan.variables.key)!
  t.ok(variables({ memory: '512Mi', cpu: '1' }), 'a memory Python\'s pattern takes')
  t.notOk(variables({ memory: '512MB' }), 'and one it refuses')
  t.equal(precompiledValidator('["other"]'), undefined, 'another schema has none')
})
