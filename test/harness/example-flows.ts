// Deployments of the flows in examples/flows, and running one of their flow runs on this machine
// with `prefect flow-run execute` — the same command a Cloud Run job built from pushpool runs.

import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PrefectFixtures } from './prefect-fixtures.ts'
import { testVenv } from './test-env.ts'

export type ExampleFlow = 'hello' | 'fails'

export const EXAMPLE_FLOWS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'flows')

/**
 * The deployment fields `prefect flow-run execute` needs to find an example flow's code: an
 * entrypoint relative to the flows directory, and a pull step that makes that directory the
 * working directory. `path` alone would also work, but makes Prefect copy the directory into the
 * current one first.
 */
export function exampleDeploymentFields (flow: ExampleFlow): { entrypoint: string, pullSteps: Array<Record<string, unknown>> } {
  return {
    entrypoint: `${flow}.py:${flow}`,
    pullSteps: [{ 'prefect.deployments.steps.set_working_directory': { directory: EXAMPLE_FLOWS_DIR } }],
  }
}

export async function createExampleDeployment (fixtures: PrefectFixtures,
  opts: { workPoolName: string, flow: ExampleFlow, name: string, jobVariables?: Record<string, unknown> }):
  Promise<{ flowId: string, deploymentId: string }> {
  const flowId = await fixtures.createFlow(opts.flow)
  const deploymentId = await fixtures.createDeployment({
    name: opts.name,
    flowId,
    workPoolName: opts.workPoolName,
    jobVariables: opts.jobVariables,
    ...exampleDeploymentFields(opts.flow),
  })
  return { flowId, deploymentId }
}

/**
 * Runs `prefect flow-run execute` for one flow run against the given server and resolves once it
 * exits, with its status and output. The status is no verdict on the flow: Prefect 3.8 exits 0
 * for a flow that failed too (it reports FAILED to the API itself); read the run's state instead.
 */
export async function executeFlowRun (opts: { apiUrl: string, authString: string, flowRunId: string }):
  Promise<{ code: number | null, output: string }> {
  const { prefect } = await testVenv()
  // A scratch PREFECT_HOME and working directory, so a run leaves nothing behind in the repo or ~.
  const scratch = await mkdtemp(join(tmpdir(), 'pushpool-flow-run-'))
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PREFECT_'))),
    PREFECT_HOME: scratch,
    PREFECT_API_URL: opts.apiUrl,
    PREFECT_API_AUTH_STRING: opts.authString,
    PREFECT__FLOW_RUN_ID: opts.flowRunId,
  }
  try {
    return await new Promise((resolvePromise, reject) => {
      const child = spawn(prefect, ['flow-run', 'execute'], { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let output = ''
      const collect = (chunk: Buffer): void => { output += chunk.toString('utf8') }
      child.stdout.on('data', collect)
      child.stderr.on('data', collect)
      child.once('error', reject)
      child.once('close', (code) => resolvePromise({ code, output }))
    })
  } finally {
    await rm(scratch, { recursive: true, force: true })
  }
}
