// The job variable impersonate_service_account: read from the merged job variables (pool default,
// then the deployment's, then the flow run's), checked, and never part of the job Prefect's worker renders.
import t from 'tap'
import { TemplateError } from '../../src/failures.ts'
import { impersonationTarget } from '../../src/jobconfig/impersonation.ts'
import { renderJobConfiguration } from '../../src/jobconfig/render.ts'
import type { BaseJobTemplate, Deployment, FlowRun } from '../../src/prefect/types.ts'
import type { RenderRequest } from '../../src/jobconfig/types.ts'
import { loadTemplate } from '../conformance/fixtures.ts'
import { deploymentlessRequest } from './render-request.ts'

const LAUNCHER = 'pushpool-launcher@acme.iam.gserviceaccount.com'
const TEAM = 'team-b@acme.iam.gserviceaccount.com'

/** prefect-gcp's template, with the variable declared and defaulted as `pushpool setup --impersonate-service-account` does. */
function template (poolDefault?: string): BaseJobTemplate {
  const base = loadTemplate('cloud-run-v2.default')
  if (poolDefault !== undefined) base.variables.properties!.impersonate_service_account = { type: 'string', default: poolDefault }
  return base
}

function request (base: BaseJobTemplate, deployment: Record<string, unknown>, flowRun: Record<string, unknown>): RenderRequest {
  const req = deploymentlessRequest(base, flowRun)
  const dep: Deployment = { id: 'd0000000-0000-4000-8000-000000000000', name: 'nightly', flow_id: 'f', job_variables: deployment, work_pool_name: 'pool', work_queue_name: 'default' }
  // Fixed ids, so that two renders differ only by what the test varies.
  return {
    ...req,
    workPool: { ...req.workPool, id: 'p0000000-0000-4000-8000-000000000000' },
    deployment: dep,
    flowRun: { ...req.flowRun, id: 'fr000000-0000-4000-8000-000000000000', deployment_id: dep.id } as FlowRun
  }
}

t.test('the pool\'s default, overridden by the deployment, overridden by the flow run', async t => {
  const target = async (poolDefault: string | undefined, deployment: Record<string, unknown>, flowRun: Record<string, unknown>): Promise<string | null> =>
    (await renderJobConfiguration(request(template(poolDefault), deployment, flowRun))).impersonateServiceAccount
  t.equal(await target(undefined, {}, {}), null, 'not named anywhere: pushpool launches as itself')
  t.equal(await target(LAUNCHER, {}, {}), LAUNCHER, 'the pool\'s default')
  t.equal(await target(LAUNCHER, { impersonate_service_account: TEAM }, {}), TEAM, 'the deployment\'s value wins over the pool\'s')
  t.equal(await target(LAUNCHER, { impersonate_service_account: TEAM }, { impersonate_service_account: LAUNCHER }), LAUNCHER, 'the flow run\'s over both')
  t.equal(await target(LAUNCHER, { impersonate_service_account: null }, {}), null, 'null opts a deployment out of the pool\'s default')
  t.equal(await target(undefined, { impersonate_service_account: TEAM }, {}), TEAM, 'a pool whose schema does not declare it still takes it')
})

t.test('the rendered job is the same with or without it: Prefect\'s worker ignores the variable', async t => {
  const without = await renderJobConfiguration(request(template(), {}, {}))
  const withIt = await renderJobConfiguration(request(template(LAUNCHER), { impersonate_service_account: TEAM }, {}))
  t.same(withIt.job, without.job)
  t.notMatch(JSON.stringify(withIt.job), /gserviceaccount/)
})

t.test('what is taken, and what is refused with the variable and the fix named', async t => {
  t.equal(impersonationTarget({}), null)
  t.equal(impersonationTarget({ impersonate_service_account: '  ' }), null, 'empty, as a form leaves it')
  t.equal(impersonationTarget({ impersonate_service_account: ` ${LAUNCHER.toUpperCase()} ` }), LAUNCHER, 'trimmed and lower-cased')
  t.equal(impersonationTarget({ impersonate_service_account: '123456789-compute@developer.gserviceaccount.com' }),
    '123456789-compute@developer.gserviceaccount.com', 'a Google-managed account')
  for (const value of ['alice@example.com', 'launcher', 'launcher@acme', '{{ prefect.variables.launcher }}']) {
    const error = (() => { try { impersonationTarget({ impersonate_service_account: value }); return null } catch (e) { return e } })()
    t.ok(error instanceof TemplateError, value)
    t.equal((error as TemplateError).field, 'variables.impersonate_service_account')
    t.match((error as Error).message, /not a service account's email.*pushpool-launcher@my-project\.iam\.gserviceaccount\.com/)
  }
  t.throws(() => impersonationTarget({ impersonate_service_account: { email: LAUNCHER } }),
    { field: 'variables.impersonate_service_account', message: /must be a service account's email as a string/ })
  await t.rejects(renderJobConfiguration(request(template(), { impersonate_service_account: 'alice@example.com' }, {})),
    { field: 'variables.impersonate_service_account', message: /a user account cannot be impersonated/ }, 'a render refuses it')
})
