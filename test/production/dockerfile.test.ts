// The Dockerfile, built without a container engine (see dockerfile-replay.ts) and started: it must
// build from what .dockerignore lets through, carry production dependencies only, run as a
// non-root user with `node` as PID 1, answer /readyz on $PORT and stop within Cloud Run's 10 s.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dockerignore, parseDockerfile, replayBuild } from './dockerfile-replay.ts'
import { startService } from './service-process.ts'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLOUD_RUN_GRACE_MS = 10_000

const stages = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'))
const ignored = dockerignore(readFileSync(join(REPO, '.dockerignore'), 'utf8'))

t.test('.dockerignore lets in only what the build needs', async t => {
  for (const path of ['package.json', 'package-lock.json', 'src/server.ts', 'openapi.yaml']) t.notOk(ignored(path), `${path} is in`)
  for (const path of ['node_modules/fastify/package.json', 'dist/server.js', '.venv/bin/python', 'data/pushpool.db', '.git/config', 'test/helper.ts']) {
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

t.test('the replayed build starts, answers /readyz on $PORT and stops on SIGTERM within 10 s', async t => {
  const work = mkdtempSync(join(tmpdir(), 'pushpool-docker-'))
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
  t.ok(existsSync(join(app, 'dist', 'server.js')), 'dist/server.js is in the image')
  t.notOk(existsSync(join(app, 'src')), 'no TypeScript sources in the image')
  for (const devDependency of ['typescript', 'tap', '@types/pg']) {
    t.notOk(existsSync(join(app, 'node_modules', devDependency)), `no ${devDependency} (a dev dependency)`)
  }

  const [node, ...args] = final.cmd!
  t.equal(node, 'node')
  const server = await startService(t, {
    args,
    cwd: app,
    // What Cloud Run gives the container, plus the least configuration pushpool needs.
    env: {
      PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
      ...final.env,
      K_SERVICE: 'pushpool',
      PUSHPOOL_WEBHOOK_SECRETS: 'a-webhook-secret-long-enough',
      PUSHPOOL_STORE_URL: `sqlite:${join(work, 'pushpool.db')}`
    }
  })
  const ready = await fetch(`${server.url}/readyz`)
  t.equal(ready.status, 200, server.output())
  const stopped = await server.stop()
  t.equal(stopped.code, 0, 'exits 0 after SIGTERM')
  t.ok(stopped.ms < CLOUD_RUN_GRACE_MS, `stopped in ${stopped.ms} ms`)
})
