// Runs every conformance case through Prefect's own Python code (render.py, in the test venv) and
// through pushpool, and compares the two field by field. Free of tap, so scripts/conformance.ts
// can run it alone.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import { CLOUD_RUN_JOB_ID, perRunJobName } from '../../src/jobconfig/names.ts'
import { TemplateError } from '../../src/failures.ts'
import { renderJobConfiguration } from '../../src/jobconfig/render.ts'
import { GPU_TIMEOUT_FIELD } from '../../src/jobconfig/gpu.ts'
import type { PrefectLookups, RenderRequest } from '../../src/jobconfig/types.ts'
import { renderPrefectWorkerJob, type PrefectWorkerJob } from '../../src/jobconfig/prefect-worker.ts'
import { textUnidecode } from '../../src/jobconfig/text-unidecode.ts'
import { validateJobVariables } from '../../src/jobconfig/validate-variables.ts'
import type { Deployment, Flow, FlowRun, WorkPool } from '../../src/prefect/types.ts'
import { parseExactJson, stringifyExactJson } from '../../src/prefect/exact-json.ts'
import { testVenv } from '../harness/test-env.ts'
import type { PrefectVenv } from '../../src/devstack/venv.ts'
import { BUNDLE_KEY, CASES, type CaseBlock, type ConformanceCase } from './cases.ts'
import { PATTERN_CASES } from './pattern-cases.ts'
import { FORMAT_CASES } from './format-cases.ts'
import { PREFECT_SERVER_FORMATS, prefectServerFormatCheck } from '../../src/jobconfig/json-schema-formats.ts'
import { isPythonRegex, pythonRegExp } from '../../src/jobconfig/python-regex.ts'
import type { DocumentedDifference } from './exclusions.ts'
import { loadTemplate } from './fixtures.ts'

const RENDER_PY = new URL('./render.py', import.meta.url).pathname
const IDNA_DATA = new URL('../../src/jobconfig/idna-data.json', import.meta.url)
const WORKER_NAME = 'pushpool'
const SUFFIX = 'abc1234'
const FLOW: Flow = { id: '5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e', name: 'etl-flow' }
const POOL_ID = '6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f'
const DEPLOYMENT_ID = '7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a'
const FLOW_RUN_ID = '8e9f0a1b-2c3d-4e4f-9a5b-6c7d8e9f0a1b'

/** One case as Prefect's API would describe it: the same objects go to render.py and to pushpool. */
interface CaseInput {
  id: string
  pool_type: ConformanceCase['poolType']
  work_pool: WorkPool
  deployment: Deployment | null
  flow_run: FlowRun
  flow: Flow | null
  blocks: CaseBlock[]
  variables: Record<string, unknown>
  base_environment: Record<string, string>
  worker_name: string
  worker_id?: string
}

interface PythonOutcome {
  validation: { ok: true } | { ok: false, path: string | null, message: string }
  render: ({ ok: true } & PythonRendered) | { ok: false, error: string }
}

interface PythonRendered {
  job_body: Record<string, unknown>
  job_name: string | null
  name: string
  region: string
  keep_job: boolean | null
  timeout: number | null
  env: Record<string, string>
  labels: Record<string, string>
  credentials: Record<string, unknown> | null
  warnings: string[]
}

interface PythonRun {
  prefect_version: string
  python_version: string
  results: Record<string, PythonOutcome>
}

export interface CaseComparison {
  id: string
  about: string
  differences: string[]
  reliedOn: DocumentedDifference[]
}

export interface ConformanceOptions {
  /**
   * A venv holding another (older) Prefect server: the server's half of every comparison (job
   * variable validation, formats, patterns) runs there, the worker's half in the test venv, since
   * pushpool validates as the server does and renders as the pinned worker does.
   */
  serverVenv?: PrefectVenv
}

export interface ConformanceReport {
  /** The Prefect whose worker code rendered the cases. */
  prefectVersion: string
  /** The Prefect whose server code validated them. */
  serverPrefectVersion: string
  comparisons: CaseComparison[]
  /** Default templates the installed prefect-gcp offers that no longer match the stored fixtures. */
  templateDrift: string[]
  /** Code points python-slugify transliterates differently from pushpool (the first few). */
  transliterationDrift: string[]
  /** Patterns and values on which Python's re and pushpool's translation disagree. */
  patternDrift: string[]
  /** Formats and values on which Prefect's server and pushpool disagree. */
  formatDrift: string[]
}

interface FormatVerdicts {
  checked: string[]
  verdicts: Array<Array<boolean | 'error'>>
}

/** The formats the server checks must be pushpool's, and each value judged alike ("error": refused). */
async function formatDrift ({ checked, verdicts }: FormatVerdicts): Promise<string[]> {
  const drift = isDeepStrictEqual(checked, PREFECT_SERVER_FORMATS) ? [] : [`formats checked: Prefect's server ${checked.join(', ')}; pushpool ${PREFECT_SERVER_FORMATS.join(', ')}`]
  for (const [index, { format, values }] of FORMAT_CASES.entries()) {
    const check = await prefectServerFormatCheck(format) ?? (() => true)
    values.forEach((value, i) => {
      const python = verdicts[index][i]
      if (check(value) !== (python === true)) drift.push(`format ${format} on ${JSON.stringify(value)}: Prefect's server ${python === true ? 'accepts' : python === false ? 'refuses' : 'fails on'} it, pushpool does not`)
    })
  }
  return drift
}

type PatternVerdict = { compiles: false, error: string } | { compiles: true, matches: boolean[] }

/** Each pattern case as Python's re judges it, against pushpool's port. */
function patternDrift (verdicts: PatternVerdict[]): string[] {
  const drift: string[] = []
  PATTERN_CASES.forEach(({ pattern, values }, index) => {
    const python = verdicts[index]
    const shown = JSON.stringify(pattern)
    if (python.compiles !== isPythonRegex(pattern)) {
      drift.push(`${shown}: Python ${python.compiles ? 'compiles it' : `refuses it (${python.error})`}, pushpool ${python.compiles ? 'refuses it' : 'compiles it'}`)
      return
    }
    if (!python.compiles) return
    const regExp = pythonRegExp(pattern)
    values.forEach((value, i) => {
      if (regExp.test(value) !== python.matches[i]) drift.push(`${shown} on ${JSON.stringify(value)}: Python ${python.matches[i] ? 'matches' : 'does not match'}, pushpool does the opposite`)
    })
  })
  return drift
}

interface PythonTransliteration {
  backend: string
  /** The transliteration of each code point from 1 to 0xFFFF. */
  table: string[]
}

const TRANSLITERATION_DRIFT_SHOWN = 10

/** Every job name goes through this table, so it is compared whole rather than through a few names. */
function transliterationDrift ({ backend, table }: PythonTransliteration): string[] {
  const drift: string[] = []
  table.forEach((expected, index) => {
    const codePoint = index + 1
    const actual = textUnidecode(String.fromCodePoint(codePoint))
    if (actual !== expected) drift.push(`U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}: ${backend} ${JSON.stringify(expected)} ≠ pushpool ${JSON.stringify(actual)}`)
  })
  return drift.length <= TRANSLITERATION_DRIFT_SHOWN
    ? drift
    : [...drift.slice(0, TRANSLITERATION_DRIFT_SHOWN), `… and ${drift.length - TRANSLITERATION_DRIFT_SHOWN} more code points`]
}

/** The case with the `command` job variable Prefect writes on an infrastructure-bound flow run. */
function withBundleCommand (c: ConformanceCase, command: string | undefined): ConformanceCase {
  return command === undefined ? c : { ...c, flowRunJobVariables: { ...(c.flowRunJobVariables ?? {}), command } }
}

function caseInput (c: ConformanceCase): CaseInput {
  const poolName = `${c.poolType}-pool`
  const deployment: Deployment | null = c.withoutDeployment === true
    ? null
    : {
        id: DEPLOYMENT_ID,
        name: 'nightly',
        flow_id: FLOW.id,
        updated: '2024-05-01T12:00:00.123456Z',
        job_variables: c.deploymentJobVariables ?? {},
        work_pool_name: poolName,
        work_queue_name: 'default'
      }
  return {
    id: c.id,
    pool_type: c.poolType,
    work_pool: { id: POOL_ID, name: poolName, type: c.poolType, base_job_template: c.template, is_paused: false, concurrency_limit: null },
    deployment,
    flow_run: {
      id: FLOW_RUN_ID,
      name: c.flowRunName ?? 'crimson-wombat',
      flow_id: FLOW.id,
      deployment_id: deployment?.id ?? null,
      work_queue_id: null,
      work_queue_name: 'default',
      work_pool_name: poolName,
      state: null,
      infrastructure_pid: null,
      job_variables: c.flowRunJobVariables === undefined ? {} : c.flowRunJobVariables,
      next_scheduled_start_time: null,
      start_time: null,
      parameters: c.flowRunParameters ?? { day: '2024-05-01' },
      tags: []
    },
    flow: c.flow === undefined ? FLOW : c.flow,
    blocks: c.blocks ?? [],
    variables: c.variables ?? {},
    base_environment: c.baseEnvironment ?? { PREFECT_API_URL: 'http://prefect.internal:4200/api' },
    worker_name: WORKER_NAME,
    ...(c.workerId === undefined ? {} : { worker_id: c.workerId })
  }
}

// Cases travel to render.py as JSON text in which big integers keep all their digits and whole
// floats their ".0" (exact-json.ts), and pushpool is given that same text read back the way its
// Prefect client reads Prefect's replies: neither side ever sees a number JavaScript rounded.
function runPython (python: string, args: string[], input?: string): string {
  const run = spawnSync(python, [RENDER_PY, ...args], {
    input,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, PREFECT_LOGGING_TO_API_ENABLED: 'false' }
  })
  if (run.status !== 0) throw new Error(`render.py ${args.join(' ')} failed (exit ${run.status}):\n${run.stderr}`)
  return run.stdout
}

function lookupsFor (input: CaseInput): PrefectLookups {
  const found = (block: CaseBlock | undefined): { id: string, name: string, data: Record<string, unknown> } | null =>
    block === undefined ? null : { id: block.id, name: block.name, data: structuredClone(block.data) }
  return {
    readBlockDocument: async (id) => found(input.blocks.find(block => block.id === id)),
    readBlockDocumentByName: async (slug, name) => found(input.blocks.find(block => block.block_type_slug === slug && block.name === name)),
    readVariable: async (name) => Object.hasOwn(input.variables, name) ? structuredClone(input.variables[name]) : undefined
  }
}

async function outcome<T> (run: () => Promise<T>): Promise<{ ok: true, value: T } | { ok: false, error: unknown }> {
  try {
    return { ok: true, value: await run() }
  } catch (error) {
    return { ok: false, error }
  }
}

const describeError = (error: unknown): string => error instanceof TemplateError ? `TemplateError(${error.field}): ${error.message}` : String(error)

/** Paths at which two JSON values differ. */
function jsonDifferences (expected: unknown, actual: unknown, path: string, out: string[]): void {
  if (isDeepStrictEqual(expected, actual)) return
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
  if (isObject(expected) && isObject(actual)) {
    for (const key of new Set([...Object.keys(expected), ...Object.keys(actual)])) jsonDifferences(expected[key], actual[key], `${path}.${key}`, out)
  } else if (Array.isArray(expected) && Array.isArray(actual) && expected.length === actual.length) {
    expected.forEach((item, index) => { jsonDifferences(item, actual[index], `${path}[${index}]`, out) })
  } else {
    out.push(`${path}: Prefect ${stringifyExactJson(expected)} ≠ pushpool ${stringifyExactJson(actual)}`)
  }
}

async function compareCase (c: ConformanceCase, input: CaseInput, python: PythonOutcome, versions: { prefectVersion: string, pythonVersion: string }): Promise<CaseComparison> {
  const differences: string[] = []
  const reliedOn = new Set<DocumentedDifference>()
  const request: RenderRequest = {
    workPool: input.work_pool,
    deployment: input.deployment,
    flowRun: input.flow_run,
    flow: input.flow,
    lookups: lookupsFor(input),
    baseEnvironment: input.base_environment,
    workerName: input.worker_name,
    workerId: input.worker_id,
    prefectVersion: versions.prefectVersion,
    pythonVersion: versions.pythonVersion,
    randomSuffix: () => SUFFIX
  }
  if (stringifyExactJson(input).includes('{{ $')) reliedOn.add('environment-placeholders')

  // The server's check of the job variables against the pool's schema.
  const validation = await outcome(async () => { await validateJobVariables(input.work_pool.base_job_template, { deployment: input.deployment?.job_variables ?? null, flowRun: input.flow_run.job_variables }, request.lookups) })
  const prefectValidation = python.validation
  if (prefectValidation.ok && !validation.ok) {
    differences.push(`validation: Prefect accepts the job variables, pushpool refuses them: ${describeError(validation.error)}`)
  } else if (!prefectValidation.ok && validation.ok) {
    if (prefectValidation.message.includes('is valid under each of')) reliedOn.add('block-reference-validation')
    else differences.push(`validation: Prefect refuses the job variables (${prefectValidation.message}), pushpool accepts them`)
  } else if (!prefectValidation.ok && !validation.ok && prefectValidation.path !== null) {
    // With several bad values the two validators may report different ones first; both must
    // blame the same job variable.
    const variable = (path: string): string => path.split('.')[0]
    const field = validation.error instanceof TemplateError ? validation.error.field.replace(/^variables\./, '') : ''
    if (variable(field) !== variable(prefectValidation.path)) differences.push(`validation: Prefect refuses '${prefectValidation.path}', pushpool refuses ${describeError(validation.error)}`)
  }

  // The worker's rendering.
  const rendered = await outcome(async () => await renderPrefectWorkerJob(request))
  const prefectRender = python.render
  if (prefectRender.ok !== rendered.ok) {
    differences.push(prefectRender.ok
      ? `render: Prefect renders the job, pushpool fails: ${describeError((rendered as { error: unknown }).error)}`
      : `render: Prefect fails (${prefectRender.error}), pushpool renders the job`)
  } else if (prefectRender.ok && rendered.ok) {
    compareRendered(c, prefectRender, rendered.value, differences, reliedOn)
  } else if (!rendered.ok && !(rendered.error instanceof TemplateError)) {
    differences.push(`render: pushpool fails with something other than a TemplateError: ${describeError(rendered.error)}`)
  }

  // The whole pipeline must refuse exactly what either step refuses, and otherwise name a valid job.
  const final = await outcome(async () => await renderJobConfiguration(request))
  const prefectRefuses = !prefectValidation.ok && !reliedOn.has('block-reference-validation')
  if (final.ok) {
    if (prefectRefuses || !prefectRender.ok) differences.push('renderJobConfiguration produced a job that Prefect refuses')
    if (!CLOUD_RUN_JOB_ID.test(final.value.jobName)) differences.push(`renderJobConfiguration named the job '${final.value.jobName}', which Cloud Run refuses`)
  } else if (!(final.error instanceof TemplateError)) {
    differences.push(`renderJobConfiguration failed with something other than a TemplateError: ${describeError(final.error)}`)
  } else if (!prefectRefuses && prefectRender.ok) {
    if (final.error.field === GPU_TIMEOUT_FIELD) reliedOn.add('gpu-timeout-cap')
    else differences.push(`renderJobConfiguration refused a job Prefect renders: ${describeError(final.error)}`)
  }

  return { id: c.id, about: c.about, differences, reliedOn: [...reliedOn] }
}

function compareRendered (c: ConformanceCase, prefect: PythonRendered, pushpool: PrefectWorkerJob, differences: string[], reliedOn: Set<DocumentedDifference>): void {
  const prefectBody = structuredClone(prefect.job_body) as Record<string, Record<string, unknown>>
  if (c.poolType === 'cloud-run' && !Object.hasOwn(pushpool.jobBody.metadata as object, 'name')) {
    delete prefectBody.metadata.name
    reliedOn.add('v1-metadata-name')
  }
  jsonDifferences(prefectBody, pushpool.jobBody, 'job_body', differences)
  const fields: Array<[string, unknown, unknown]> = [
    ['name', prefect.name, pushpool.name],
    ['region', prefect.region, pushpool.region],
    ['keep_job', prefect.keep_job ?? false, pushpool.keepJob],
    ['timeout', prefect.timeout, pushpool.timeout],
    ['env', prefect.env, pushpool.env],
    ['labels', prefect.labels, pushpool.labels],
    ['credentials', prefect.credentials, pushpool.credentials],
    ['warnings', prefect.warnings, pushpool.warnings.filter(warning => warning.startsWith('PREFECT_API_'))]
  ]
  for (const [field, expected, actual] of fields) jsonDifferences(expected, actual, field, differences)

  const jobName = perRunJobName(pushpool.name, SUFFIX)
  if (c.poolType !== 'cloud-run-v2' || prefect.job_name === null) return
  reliedOn.add('random-job-name-suffix')
  const slug = (name: string): string => name.slice(0, -(SUFFIX.length + 1))
  if (slug(prefect.job_name) === slug(jobName)) return
  if (!CLOUD_RUN_JOB_ID.test(prefect.job_name)) reliedOn.add('invalid-prefect-job-name')
  else differences.push(`job_name: Prefect '${prefect.job_name}' ≠ pushpool '${jobName}' (suffixes aside)`)
  if (!CLOUD_RUN_JOB_ID.test(jobName)) differences.push(`job_name: pushpool's '${jobName}' is not a valid Cloud Run job id`)
}

export async function runConformance (options: ConformanceOptions = {}): Promise<ConformanceReport> {
  const { python } = await testVenv()
  const server = options.serverVenv?.python ?? python
  const installedTemplates = JSON.parse(runPython(python, ['--default-templates'])) as Record<string, unknown>
  const templateDrift = (['cloud-run-v2', 'cloud-run'] as const)
    .filter(poolType => !isDeepStrictEqual(installedTemplates[poolType], loadTemplate(`${poolType}.default`)))
    .map(poolType => `${poolType}: the installed prefect-gcp default template differs from test/conformance/fixtures/${poolType}.default.json`)

  const transliteration = transliterationDrift(JSON.parse(runPython(python, ['--transliteration'])) as PythonTransliteration)
  const patterns = patternDrift(JSON.parse(runPython(server, ['--patterns'], JSON.stringify({ cases: PATTERN_CASES }))) as PatternVerdict[])
  const formats = await formatDrift(JSON.parse(runPython(server, ['--formats'], JSON.stringify({ cases: FORMAT_CASES }))) as FormatVerdicts)
  if (!isDeepStrictEqual(JSON.parse(runPython(server, ['--idna-data'])), JSON.parse(readFileSync(IDNA_DATA, 'utf8')))) {
    formats.push('src/jobconfig/idna-data.json is not what the installed idna and Python produce: regenerate it with `.venv/bin/python test/conformance/render.py --idna-data > src/jobconfig/idna-data.json`')
  }

  const bundled = CASES.filter(c => c.bundle !== undefined)
  const commands = JSON.parse(runPython(python, ['--bundle-commands'], JSON.stringify({
    bundles: bundled.map(c => ({ execution_step: c.bundle?.executionStep, launcher: c.bundle?.launcher ?? null, key: BUNDLE_KEY }))
  }))) as string[]
  const commandOf = new Map(bundled.map((c, i) => [c.id, commands[i]]))
  const inputs = CASES.map(c => parseExactJson(stringifyExactJson(caseInput(withBundleCommand(c, commandOf.get(c.id))))) as CaseInput)
  const casesJson = stringifyExactJson({ cases: inputs })
  const run = parseExactJson(runPython(python, server === python ? [] : ['--only', 'render'], casesJson)) as PythonRun
  const serverRun = server === python ? run : parseExactJson(runPython(server, ['--only', 'validation'], casesJson)) as PythonRun
  const versions = { prefectVersion: run.prefect_version, pythonVersion: run.python_version }
  const comparisons: CaseComparison[] = []
  for (const [index, c] of CASES.entries()) {
    const outcome = { validation: serverRun.results[c.id].validation, render: run.results[c.id].render }
    comparisons.push(await compareCase(c, inputs[index], outcome, versions))
  }
  return {
    prefectVersion: run.prefect_version,
    serverPrefectVersion: serverRun.prefect_version,
    comparisons,
    templateDrift,
    transliterationDrift: transliteration,
    patternDrift: patterns,
    formatDrift: formats
  }
}

