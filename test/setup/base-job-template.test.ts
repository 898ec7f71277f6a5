// setup ships prefect-gcp's default cloud-run-v2 base job template as JSON, so it needs no Python.
// This keeps the copy honest: it must equal what the installed prefect-gcp prints.
import t from 'tap'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { defaultCloudRunV2Template } from '../../src/setup/work-pool.ts'

t.test('the shipped cloud-run-v2 template is the one prefect-gcp produces', async t => {
  // No server is needed: the template comes from `prefect work-pool get-default-base-job-template`.
  const fromPrefectGcp = await new PrefectFixtures('http://127.0.0.1:9/api', 'unused:unused').defaultBaseJobTemplate('cloud-run-v2')
  t.same(defaultCloudRunV2Template(), fromPrefectGcp,
    'regenerate src/setup/cloud-run-v2-base-job-template.json with `prefect work-pool get-default-base-job-template --type cloud-run-v2`')
})

t.test('each call gives a fresh copy', async t => {
  const first = defaultCloudRunV2Template()
  first.variables.properties!.region.default = 'changed'
  t.not(defaultCloudRunV2Template().variables.properties!.region.default, 'changed')
})
