// cloudbuild.yaml, read as Cloud Build would: it builds with the Dockerfile, pushes to Artifact
// Registry, deploys with every variable the service needs (secrets as secrets), and schedules
// reconcile with an OIDC token for the service URL.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { ConfigError, loadConfig, VARIABLES } from '../../src/config.ts'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const read = (path: string): string => readFileSync(join(REPO, path), 'utf8')

interface Step { id: string, name: string, entrypoint?: string, args: string[] }
interface BuildConfig { substitutions: Record<string, string>, steps: Step[], images: string[], options: Record<string, unknown> }

const source = read('cloudbuild.yaml')
const build = parse(source) as BuildConfig
const step = (id: string): Step => {
  const found = build.steps.find(s => s.id === id)
  if (found === undefined) throw new Error(`cloudbuild.yaml has no step "${id}"`)
  return found
}
const flag = (args: string[], name: string): string | undefined =>
  args.find(a => a.startsWith(`--${name}=`))?.slice(name.length + 3)

/** `A=1,B=2`, or gcloud's `^;^A=1;B=2` with its own delimiter, as a map. */
function keyValues (list: string): Record<string, string> {
  const custom = /^\^(.)\^/.exec(list)
  const delimiter = custom?.[1] ?? ','
  const body = custom === null ? list : list.slice(3)
  return Object.fromEntries(body.split(delimiter).map(pair => {
    const eq = pair.indexOf('=')
    return [pair.slice(0, eq), pair.slice(eq + 1)]
  }))
}

// The variables src/config.ts reads.
const schemaVariables = new Set(Object.values(VARIABLES).map(v => v.env))

/** Required by the schema: what loadConfig reports missing from an empty environment. */
function requiredVariables (): string[] {
  try {
    loadConfig({})
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.flatMap(p => /^(\S+) is required/.exec(p)?.[1] ?? [])
    throw err
  }
  return []
}

/** The variables docs/deploy.md's "What the service is given" table lists. */
function guideVariables (): string[] {
  const guide = read('docs/deploy.md')
  const start = guide.indexOf('### What the service is given')
  if (start === -1) throw new Error('docs/deploy.md has no "What the service is given" table')
  const section = guide.slice(start, guide.indexOf('\n#', start + 1))
  return [...section.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map(m => m[1])
}

const IMAGE = '${_REGION}-docker.pkg.dev/${PROJECT_ID}/${_REPOSITORY}/${_SERVICE}:${BUILD_ID}'
const SERVICE_URL = 'https://${_SERVICE}-${PROJECT_NUMBER}.${_REGION}.run.app'
const SECRET_VARIABLES = ['PUSHPOOL_WEBHOOK_SECRETS', 'PUSHPOOL_ADMIN_TOKENS', 'PREFECT_API_AUTH_STRING', 'PUSHPOOL_STORE_URL']

t.test('the image is built with the Dockerfile and pushed to Artifact Registry', async t => {
  const { args } = step('build')
  t.equal(step('build').name, 'gcr.io/cloud-builders/docker')
  t.equal(args[0], 'build')
  t.equal(args[args.indexOf('-f') + 1], 'Dockerfile')
  t.equal(args[args.indexOf('-t') + 1], IMAGE)
  t.equal(args.at(-1), '.', 'the repository is the build context (.dockerignore filters it)')
  t.same(step('push').args, ['push', IMAGE])
  t.same(build.images, [IMAGE])
  const ids = build.steps.map(s => s.id)
  t.ok(ids.indexOf('push') < ids.indexOf('deploy') && ids.indexOf('deploy') < ids.indexOf('reconcile-schedule'), 'push, then deploy, then schedule')
})

t.test('the service is deployed public at the IAM level, as its own service account', async t => {
  const { entrypoint, args } = step('deploy')
  t.equal(entrypoint, 'gcloud')
  t.same(args.slice(0, 3), ['run', 'deploy', '${_SERVICE}'])
  t.equal(flag(args, 'image'), IMAGE)
  t.equal(flag(args, 'region'), '${_REGION}')
  t.equal(flag(args, 'service-account'), '${_SERVICE_ACCOUNT}')
  t.ok(args.includes('--allow-unauthenticated'), 'Prefect cannot send Google ID tokens; pushpool authenticates every route')
  t.equal(flag(args, 'min-instances'), '0', 'scales to zero')
})

t.test('the deploy sets every variable the service needs, secrets through Secret Manager', async t => {
  const { args } = step('deploy')
  const secrets = keyValues(flag(args, 'set-secrets') ?? '')
  const env = keyValues(flag(args, 'set-env-vars') ?? '')
  const set = new Set([...Object.keys(secrets), ...Object.keys(env)])

  const required = requiredVariables()
  t.ok(required.includes('PUSHPOOL_WEBHOOK_SECRETS'), 'the schema\'s required variables are found')
  const guide = guideVariables()
  t.ok(guide.length >= SECRET_VARIABLES.length, 'the guide\'s table is found')
  for (const name of [...required, ...guide]) t.ok(set.has(name), `${name} is set`)
  for (const name of set) t.ok(schemaVariables.has(name), `${name} is a variable the service reads`)

  for (const name of SECRET_VARIABLES) {
    t.match(secrets[name], /^\$\{_[A-Z_]+_SECRET\}:(latest|\d+)$/, `${name} comes from a Secret Manager secret named by a substitution`)
    t.notOk(name in env, `${name} is not a plain environment variable`)
  }
  t.equal(env.PUSHPOOL_AUDIENCE, SERVICE_URL, 'ID tokens are for the service URL')
  t.equal(env.PUSHPOOL_SCHEDULER_PRINCIPAL, '${_SCHEDULER_SERVICE_ACCOUNT}', 'the scheduler\'s principal may reconcile')
  t.equal(env.PUSHPOOL_GCP_PROJECT, '${PROJECT_ID}')
  t.equal(flag(args, 'set-cloudsql-instances'), '${_CLOUDSQL_INSTANCE}', 'the Cloud SQL instance is mounted')
})

t.test('Cloud Scheduler calls POST /v1/reconcile every minute with an OIDC token for the service', async t => {
  const { entrypoint, args } = step('reconcile-schedule')
  t.equal(entrypoint, 'bash')
  const script = args.at(-1) ?? ''
  t.match(script, `url="${SERVICE_URL}"`)
  t.match(script, '--uri="$$url/v1/reconcile"')
  t.match(script, '--http-method=POST')
  t.match(script, "--schedule='* * * * *'")
  t.match(script, '--oidc-service-account-email=${_SCHEDULER_SERVICE_ACCOUNT}')
  t.match(script, '--oidc-token-audience="$$url"')
})

/** A value with the substitutions applied as Cloud Build would, for project `proj` (number 123). */
function substituted (value: string): string {
  const values: Record<string, string> = { ...build.substitutions, PROJECT_ID: 'proj', PROJECT_NUMBER: '123', BUILD_ID: 'b1' }
  const once = (text: string): string => text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name: string) => values[name] ?? '')
  return once(once(value))
}

/** What the stand-in gcloud does for a command (its first three words): print lines, or fail with a message. */
type GcloudAnswer = { lines: string[] } | { error: string }

/**
 * A step's script as Cloud Build hands it to bash (substitutions applied, `$$` → `$`), run against
 * a stand-in gcloud that records its calls and answers each command as `answers` says (by default
 * it prints nothing and succeeds).
 */
async function runStep (id: string, answers: Record<string, GcloudAnswer>): Promise<{ code: number | null, calls: string[], stderr: string }> {
  const script = substituted(step(id).args.at(-1) ?? '').replaceAll('$$', '$')
  const dir = mkdtempSync(join(tmpdir(), 'pushpool-gcloud-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const cases = Object.entries(answers).map(([command, answer]) => 'error' in answer
    ? `  ${JSON.stringify(command)}) echo ${JSON.stringify(answer.error)} >&2; exit 1 ;;`
    : `  ${JSON.stringify(command)}) printf '%s\\n' ${answer.lines.map(line => `'${line}'`).join(' ')} ;;`)
  writeFileSync(join(dir, 'gcloud'), ['#!/usr/bin/env bash', 'echo "$*" >> "$GCLOUD_CALLS"', 'case "$1 $2 $3" in', ...cases, 'esac'].join('\n'), { mode: 0o755 })
  const calls = join(dir, 'calls')
  writeFileSync(calls, '')
  const child = spawn('bash', ['-c', script], { env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}`, GCLOUD_CALLS: calls }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  return { code, stderr, calls: readFileSync(calls, 'utf8').split('\n').filter(line => line !== '') }
}

/** A call's first four words: the command and its first argument. */
const head = (call: string): string => call.split(' ').slice(0, 4).join(' ')

/** The schedule step, with the scheduler's existing jobs, a failing listing or a failing create. */
async function runScheduleStep (gcloud: { jobs?: string[], listError?: string, createError?: string }): Promise<{ code: number | null, calls: string[], stderr: string }> {
  const run = await runStep('reconcile-schedule', {
    'scheduler jobs list': gcloud.listError !== undefined ? { error: gcloud.listError } : { lines: gcloud.jobs ?? [] },
    ...(gcloud.createError !== undefined ? { 'scheduler jobs create': { error: gcloud.createError } } : {})
  })
  return { ...run, calls: run.calls.map(head) }
}

t.test('the scheduler job is updated when it exists and created when not; a failure shows its own error', async t => {
  const job = build.substitutions._SCHEDULER_JOB
  const exists = await runScheduleStep({ jobs: ['other-job', job] })
  t.equal(exists.code, 0, exists.stderr)
  t.same(exists.calls, ['scheduler jobs list --location=us-central1', 'scheduler jobs update http'], 'an existing job is updated')

  const missing = await runScheduleStep({ jobs: [`${job}-old`] })
  t.equal(missing.code, 0, missing.stderr)
  t.equal(missing.calls.at(-1), 'scheduler jobs create http', 'a missing one is created (a job whose name only starts alike does not count)')

  const denied = await runScheduleStep({ createError: 'ERROR: (gcloud.scheduler.jobs.create.http) PERMISSION_DENIED: cloudscheduler.jobs.create' })
  t.not(denied.code, 0, 'a failed create fails the step')
  t.match(denied.stderr, 'PERMISSION_DENIED: cloudscheduler.jobs.create', 'with its own error')
  t.notOk(denied.calls.some(c => c.startsWith('scheduler jobs update')), 'no update is tried after it')

  const unlisted = await runScheduleStep({ listError: 'ERROR: (gcloud.scheduler.jobs.list) API [cloudscheduler.googleapis.com] not enabled' })
  t.not(unlisted.code, 0, 'a failed listing fails the step')
  t.match(unlisted.stderr, 'not enabled')
  t.same(unlisted.calls, ['scheduler jobs list --location=us-central1'], 'and nothing else is tried')
})

/** Each `--substitutions=…` value in docs/deploy.md, with the guide's shell variables filled in. */
function guideSubstitutions (variables: Record<string, string>): string[] {
  const guide = read('docs/deploy.md')
  return [...guide.matchAll(/--substitutions='([^']*)'|--substitutions="([^"]*)"/g)]
    .map(m => (m[1] ?? m[2]).replace(/\$([A-Z_][A-Z0-9_]*)/g, (_, name: string) => variables[name] ?? `<${name}>`))
}

t.test('the guide\'s --substitutions survive several admin principals (gcloud splits on commas)', async t => {
  const admins = 'ana@example.com,bo@example.com'
  const found = guideSubstitutions({ ADMIN_EMAILS: admins, PREFECT_UI_URL: 'https://prefect.example.com' })
  t.ok(found.length >= 2, `the guide passes substitutions to the trigger and to builds submit (${found.length})`)
  for (const value of found) {
    const parsed = keyValues(value)
    t.equal(parsed._ADMIN_PRINCIPALS, admins, 'both principals reach _ADMIN_PRINCIPALS')
    t.equal(parsed._PREFECT_UI_URL, 'https://prefect.example.com', 'the Prefect UI URL is a substitution, no edit of cloudbuild.yaml')
    for (const key of Object.keys(parsed)) t.ok(key in build.substitutions, `${key} is a substitution cloudbuild.yaml declares`)
  }
})

t.test('every substitution used is declared, and every declared one is used', async t => {
  const builtIn = new Set(['PROJECT_ID', 'PROJECT_NUMBER', 'BUILD_ID'])
  const withoutDeclarations = source.slice(source.indexOf('\nsteps:'))
  // `$$` is Cloud Build's escape for a literal `$` (a shell variable), so it is no substitution.
  const used = new Set([...withoutDeclarations.replaceAll('$$', '').matchAll(/\$\{([A-Z_][A-Z0-9_]*)\}/g)].map(m => m[1]))
  for (const name of used) t.ok(builtIn.has(name) || name in build.substitutions, `${name} is declared or built in`)
  for (const name of Object.keys(build.substitutions)) t.ok(used.has(name), `${name} is used`)
  t.equal(build.options.dynamicSubstitutions, true, 'substitutions may refer to PROJECT_ID under `gcloud builds submit` too')
})

t.test('the guide\'s example URL for another PostgreSQL starts without node-postgres\'s SECURITY WARNING', async t => {
  const example = /`(postgresql:\/\/[^`]*sslmode=[^`]*)`/.exec(read('docs/deploy.md'))?.[1]
  t.ok(example, 'the guide gives a URL with an sslmode')
  const warnings: string[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning.message) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const { parse } = await import('pg-connection-string')
  const config = parse(example ?? '')
  await new Promise(resolve => setImmediate(resolve))
  t.same(warnings, [], 'no warning is emitted for it')
  t.same(config.ssl, {}, 'and the connection is TLS with the certificate checked (rejectUnauthorized is not turned off)')
})

t.test('the timers queue is created once, before the deploy; a failure shows its own error', async t => {
  const queue = build.substitutions._TASKS_QUEUE
  const ids = build.steps.map(s => s.id)
  t.ok(ids.indexOf('timers-queue') < ids.indexOf('deploy'), 'the queue exists before the service can arm a timer')
  const missing = await runStep('timers-queue', { 'tasks queues list': { lines: [`${queue}-old`] } })
  t.equal(missing.code, 0, missing.stderr)
  t.match(missing.calls.at(-1), new RegExp(`^tasks queues create ${queue} --location=us-central1 `), 'a missing queue is created (one whose name only starts alike does not count)')
  const exists = await runStep('timers-queue', { 'tasks queues list': { lines: [queue] } })
  t.equal(exists.code, 0, exists.stderr)
  t.same(exists.calls.map(head), ['tasks queues list --location=us-central1'], 'an existing queue is left as it is')
  const off = await runStep('timers-queue', { 'tasks queues list': { error: 'API [cloudtasks.googleapis.com] not enabled' } })
  t.not(off.code, 0, 'a failed listing fails the step')
  t.match(off.stderr, 'not enabled')

  const env = keyValues(flag(step('deploy').args, 'set-env-vars') ?? '')
  t.equal(env.PUSHPOOL_TIMERS, 'cloud-tasks', 'the service arms its timers on Cloud Tasks')
  t.equal(env.PUSHPOOL_TASKS_QUEUE, `projects/\${PROJECT_ID}/locations/\${_REGION}/queues/\${_TASKS_QUEUE}`, 'on the queue this step makes')
  t.equal(env.PUSHPOOL_TASKS_INVOKER, '${_TASKS_INVOKER}')
  const deployed = Object.fromEntries(Object.entries(env).map(([name, value]) => [name, substituted(value)]))
  const config = loadConfig({ ...deployed, PUSHPOOL_WEBHOOK_SECRETS: 'a-webhook-secret-of-some-length' })
  t.same([config.timers, config.tasksQueue, config.tasksInvoker], ['cloud-tasks', 'projects/proj/locations/us-central1/queues/pushpool-timers', 'pushpool-invoker@proj.iam.gserviceaccount.com'],
    'and the service accepts that configuration')
})

t.test('the execution-end push: a sink on the RunJob system events, a topic it may publish to, an OIDC push to the route', async t => {
  const name = build.substitutions._EXECUTION_END
  const fresh = await runStep('execution-end', { 'logging sinks describe': { lines: ['serviceAccount:sink-writer@gcp-sa-logging.iam.gserviceaccount.com'] } })
  t.equal(fresh.code, 0, fresh.stderr)
  t.same(fresh.calls.map(head), [
    'pubsub topics list --format=value(name.basename())',
    `pubsub topics create ${name}`,
    'logging sinks list --format=value(name)',
    `logging sinks create ${name}`,
    `logging sinks describe ${name}`,
    `pubsub topics add-iam-policy-binding ${name}`,
    'pubsub subscriptions list --format=value(name.basename())',
    `pubsub subscriptions create ${name}`
  ], 'a first build creates each part')
  const calls = fresh.calls.join('\n')
  t.match(calls, `logging sinks create ${name} pubsub.googleapis.com/projects/proj/topics/${name} --log-filter=log_id("cloudaudit.googleapis.com/system_event") AND resource.type="cloud_run_job" AND protoPayload.methodName="/Jobs.RunJob"`)
  t.match(calls, '--member=serviceAccount:sink-writer@gcp-sa-logging.iam.gserviceaccount.com --role=roles/pubsub.publisher', 'the sink\'s writer may publish')
  t.match(calls, '--push-endpoint=https://pushpool-123.us-central1.run.app/v1/executions/ended')
  t.match(calls, '--push-auth-service-account=pushpool-execution-end@proj.iam.gserviceaccount.com')
  t.match(calls, '--push-auth-token-audience=https://pushpool-123.us-central1.run.app', 'the token is for the service URL, which PUSHPOOL_AUDIENCE names')

  const again = await runStep('execution-end', {
    'pubsub topics list': { lines: [name] },
    'logging sinks list': { lines: [name] },
    'pubsub subscriptions list': { lines: [name] }
  })
  t.equal(again.code, 0, again.stderr)
  t.same(again.calls.map(head).filter(call => /create|update/.test(call)), [`logging sinks update ${name}`, `pubsub subscriptions update ${name}`], 'a second build updates, creating nothing')

  const env = keyValues(flag(step('deploy').args, 'set-env-vars') ?? '')
  t.equal(env.PUSHPOOL_EXECUTION_EVENTS_PRINCIPAL, '${_EXECUTION_END_PUSHER}', 'the route admits the pusher\'s tokens')
  t.equal(env.PUSHPOOL_MAX_IN_FLIGHT, '${_CONCURRENCY}')
  t.equal(flag(step('deploy').args, 'concurrency'), '${_CONCURRENCY}', 'one instance runs as many drives as Cloud Run sends it requests')
})
