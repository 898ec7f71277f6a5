// The Dockerfile, built without a container engine (see dockerfile-replay.ts) and started: it must
// build from what .dockerignore lets through, carry production dependencies only, run as a
// non-root user with `node` as PID 1, run the artifact `npm start` runs (scripts/build.ts: the
// server script and its code cache), launch a run against the emulator, and stop within Cloud Run's 10 s.
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dockerignore, parseDockerfile, replayBuild } from './dockerfile-replay.ts'
import { codeCacheStates, startService } from './service-process.ts'
import { codeCacheOf, serverScriptIn } from '../../scripts/code-cache.ts'
import { prefectServer } from '../harness/prefect.ts'
import { PrefectFixtures } from '../harness/prefect-fixtures.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import { WEBHOOK_SECRET, deliverUntilPrefectAnswers, webhookHeaders, webhookPayload } from '../helper.ts'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLOUD_RUN_GRACE_MS = 10_000
/** The `node` user of the official Node images, which the image runs as and the CLI's compile cache is written for. */
const IMAGE_UID = 1000

const stages = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'))
const ignored = dockerignore(readFileSync(join(REPO, '.dockerignore'), 'utf8'))
const scripts = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts

t.test('.dockerignore lets in only what the build needs', async t => {
  for (const path of ['package.json', 'package-lock.json', 'src/server.ts', 'openapi.yaml', 'scripts/build.ts', 'scripts/compile-cache.ts', 'scripts/code-cache.ts', 'scripts/code-cache-peers.ts', 'scripts/protos-subset.ts', 'scripts/precompile-schemas.ts']) {
    t.notOk(ignored(path), `${path} is in`)
  }
  for (const path of ['node_modules/fastify/package.json', 'dist/server.js', '.venv/bin/python', 'data/pushpool.db', '.git/config', 'test/helper.ts', 'scripts/bench.ts']) {
    t.ok(ignored(path), `${path} is out`)
  }
})

t.test('every stage is Node 24; the last runs node as a non-root user', async t => {
  t.ok(stages.length >= 2, 'multi-stage')
  for (const stage of stages) t.match(stage.image, /^node:24-bookworm-slim$/, `${stage.name ?? 'final'} stage on Node 24`)
  const final = stages.at(-1)!
  const user = final.instructions.filter(i => i.keyword === 'USER').at(-1)?.args
  t.ok(user !== undefined && !['root', '0', '0:0'].includes(user), `USER ${user} is not root`)
  const cmd = final.instructions.filter(i => i.keyword === 'CMD').at(-1)?.args ?? ''
  t.same(JSON.parse(cmd), ['node', 'dist/server.js'], 'CMD is node itself, in exec form')
  t.notOk(cmd.includes('npm'), 'no npm at run time')
})

t.test('the image runs what `npm run build` builds and `npm start` starts', async t => {
  const runs = stages.flatMap(stage => stage.instructions.filter(i => i.keyword === 'RUN').map(i => i.args))
  t.ok(runs.some(run => run.includes('node scripts/build.ts')), 'the build stage runs scripts/build.ts')
  t.ok(scripts.build.includes('node scripts/build.ts'), `npm run build runs scripts/build.ts (${scripts.build})`)
  t.ok(scripts.start.includes('node dist/server.js'), `npm start runs dist/server.js (${scripts.start})`)
  t.ok(runs.some(run => run.includes(`--cache-uid ${IMAGE_UID}`)), `the CLI's compile cache is written for uid ${IMAGE_UID}, the image's user`)
})

t.test('the replayed build, started as the image\'s user: /readyz on $PORT, a run launched from the code cache, SIGTERM within 10 s', async t => {
  const work = mkdtempSync(join(tmpdir(), 'pushpool-docker-'))
  // The image's user must reach the stages' files, as in an image.
  chmodSync(work, 0o755)
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const steps: string[] = []
  const built = await replayBuild(stages, {
    context: REPO,
    ignored,
    workRoot: work,
    // Same packages, same lockfile: npm only takes them from its local cache when it can.
    runEnv: { npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
    onStep: (step, ms) => { if (ms > 1000) steps.push(`${ms} ms  ${step}`) }
  })
  t.comment(`slow steps:\n${steps.join('\n')}`)

  const final = built.at(-1)!
  const app = join(final.root, final.workdir)
  for (const file of ['server.js', 'cli.js', 'compile-cache']) t.ok(existsSync(join(app, 'dist', file)), `dist/${file} is in the image`)
  const script = serverScriptIn(join(app, 'dist'))
  t.ok(existsSync(join(app, 'dist', codeCacheOf(script))), `the server script and its code cache are in the image (${script}, ${codeCacheOf(script)})`)
  t.notOk(existsSync(join(app, 'src')), 'no TypeScript sources in the image')
  for (const devDependency of ['typescript', 'tap', '@types/pg', 'esbuild']) {
    t.notOk(existsSync(join(app, 'node_modules', devDependency)), `no ${devDependency} (a dev dependency)`)
  }

  const prefectPeer = await prefectServer()
  const prefect = new PrefectFixtures(prefectPeer.apiUrl, prefectPeer.authString)
  // Cloud Run takes a while to reconcile a new job, so gax polls CreateJob's operation: with the
  // Operations classes the build defers (LAZY_REQUIRES in scripts/build.ts).
  const emulator = await startEmulator({ executions: 'hold', jobReconcileMs: 300 })
  t.teardown(() => emulator.close())
  const { pool, deploymentId } = await prefect.servedPool('image', 'proj-image')
  const data = join(work, 'data')
  mkdirSync(data)
  chmodSync(data, 0o777)

  // Only root can start a process as another user.
  const asImageUser = process.getuid?.() === 0
  const [node, ...args] = final.cmd!
  t.equal(node, 'node')
  const server = await startService(t, {
    args,
    cwd: app,
    ...(asImageUser ? { uid: IMAGE_UID, gid: IMAGE_UID } : {}),
    // What Cloud Run gives the container, plus the least configuration pushpool needs.
    env: {
      PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
      HOME: data,
      ...final.env,
      K_SERVICE: 'pushpool',
      PUSHPOOL_WEBHOOK_SECRETS: WEBHOOK_SECRET,
      PUSHPOOL_STORE_URL: `sqlite:${join(data, 'pushpool.db')}`,
      PREFECT_API_URL: prefectPeer.apiUrl,
      PREFECT_API_AUTH_STRING: prefectPeer.authString,
      PUSHPOOL_POOLS: pool,
      PUSHPOOL_CLOUD_RUN_ENDPOINT: emulator.endpoint
    }
  })
  t.teardown(() => { if (!t.passing()) t.comment(`the server's output:\n${server.output()}`) })
  const ready = await fetch(`${server.url}/readyz`)
  t.equal(ready.status, 200, '/readyz answers 200')

  // The bundle's lazy chunks (the Google clients with the Cloud Run protos subset, gRPC) at work.
  const run = await prefect.createFlowRun(deploymentId)
  const reply = await deliverUntilPrefectAnswers(
    () => fetch(`${server.url}/v1/webhooks/prefect`, { method: 'POST', headers: webhookHeaders(), body: webhookPayload(run.id) }),
    async res => ({ status: res.status, code: res.status === 503 ? (await res.clone().json() as { code?: string }).code : undefined }))
  const body = await reply.json() as { state?: string }
  t.equal(reply.status, 202, 'the webhook is answered 202')
  t.equal(body.state, 'launched', `the run is launched (${JSON.stringify(body)})`)
  t.equal(emulator.executions().length, 1, 'one execution in the emulator')
  t.ok((emulator.calls().GetOperation ?? 0) >= 1, `the launch polled CreateJob's operation until the job was reconciled (GetOperation ×${emulator.calls().GetOperation})`)

  const stopped = await server.stop()
  t.equal(stopped.code, 0, 'exits 0 after SIGTERM')
  t.ok(stopped.ms < CLOUD_RUN_GRACE_MS, `stopped in ${stopped.ms} ms`)

  // The build trained the cache without the image's NODE_OPTIONS, which V8 takes all the same.
  t.same(codeCacheStates(server.output()), ['accepted'], `the server started from the code cache written at build time (as uid ${asImageUser ? IMAGE_UID : process.getuid?.()})`)
})
