// The standalone entry point, as a parent process (demo, benchmarks) uses it.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { v2 } from '@google-cloud/run'
import t from 'tap'
import { emulatorClientOptions } from '../../src/emulator/index.ts'
import { startHttpWorker } from './http-worker.ts'

const MAIN = fileURLToPath(new URL('../../src/emulator/main.ts', import.meta.url))
// The child strips types natively while tap's test processes compile through its TypeScript loader;
// coverage of the same files compiled two ways corrupts tap's merged report, so the child records none.
const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }

t.test('prints {"endpoint", "httpUrl", "certsUrl"} once listening, serves the real client, stops on SIGTERM', async t => {
  const child = spawn(process.execPath, [MAIN, '--port', '0', '--executions', 'succeed'], { stdio: ['ignore', 'pipe', 'inherit'], env })
  t.teardown(() => child.kill('SIGKILL'))
  const [line] = await once(createInterface({ input: child.stdout }), 'line') as [string]
  const { endpoint, httpUrl, certsUrl } = JSON.parse(line) as { endpoint: string, httpUrl: string, certsUrl: string }
  t.match(endpoint, /^127\.0\.0\.1:\d+$/)
  t.match(httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(certsUrl, `${httpUrl}/oauth2/v1/certs`)
  t.equal((await fetch(certsUrl)).status, 200)

  const jobs = new v2.JobsClient({ ...emulatorClientOptions(endpoint), projectId: 'p' })
  t.teardown(() => jobs.close())
  const parent = 'projects/p/locations/us-central1'
  await jobs.createJob({ parent, jobId: 'standalone', job: { template: { template: { containers: [{ image: 'i' }] } } } })
  const [op] = await jobs.runJob({ name: `${parent}/jobs/standalone` })
  const [execution] = await op.promise()
  t.equal((execution as { succeededCount: number }).succeededCount, 1)

  child.kill('SIGTERM')
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0)
})

t.test('the execution-end push is configured by flags and environment', async t => {
  const worker = await startHttpWorker(t)
  const child = spawn(process.execPath, [MAIN, '--executions', 'succeed', '--execution-end-push-service-account', 'pusher@p.iam.gserviceaccount.com'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...env, PUSHPOOL_EMULATOR_EXECUTION_END_PUSH_URL: `${worker.url}/ended` }
  })
  t.teardown(() => child.kill('SIGKILL'))
  const [line] = await once(createInterface({ input: child.stdout }), 'line') as [string]
  const jobs = new v2.JobsClient({ ...emulatorClientOptions((JSON.parse(line) as { endpoint: string }).endpoint), projectId: 'p' })
  t.teardown(() => jobs.close())
  const parent = 'projects/p/locations/us-central1'
  await jobs.createJob({ parent, jobId: 'pushed', job: { template: { template: { containers: [{ image: 'i' }] } } } })
  await jobs.runJob({ name: `${parent}/jobs/pushed` })
  const [push] = await worker.waitForRequests(1)
  t.equal(push.path, '/ended')
  t.match(push.headers.authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/, 'an ID token for the configured account')
  t.match(JSON.parse(push.body.toString()), { message: { data: String }, subscription: 'projects/p/subscriptions/execution-end' })
})

t.test('bad arguments → usage error, exit code 2', async t => {
  const cases: Array<[string[], RegExp]> = [
    [['--executions', 'sometimes'], /--executions must be one of process, hold, succeed/],
    [['--execution-end-push-url', 'ftp://x'], /--execution-end-push-url must be an http/],
    [['--execution-end-push-audience', 'a'], /need --execution-end-push-url/],
    [['--execution-end-push-url', 'http://127.0.0.1:1/x', '--execution-end-push-service-account', 'nobody'], /must be a service account email/]
  ]
  for (const [args, message] of cases) {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const [code] = await once(child, 'exit') as [number | null]
    t.equal(code, 2, args.join(' '))
    t.match(stderr, message)
  }
})
