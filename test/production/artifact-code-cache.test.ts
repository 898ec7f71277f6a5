// The artifact's server script starts from the code cache its build trained (scripts/code-cache.ts),
// says so in its log, and starts without it as well: when NODE_DISABLE_COMPILE_CACHE=1 turns it
// off, and when the cache is not there.
import t from 'tap'
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { builtArtifact, temporaryDir } from './artifact.ts'
import { codeCacheStates, parentEnv, startService } from './service-process.ts'
import { codeCacheOf, serverScriptIn, writeServerCodeCache } from '../../scripts/code-cache.ts'
import { WEBHOOK_SECRET } from '../helper.ts'

t.test('the server script starts from its trained code cache, and without it', async t => {
  const dir = temporaryDir(t, 'pushpool-code-cache-')
  const dist = await builtArtifact(t)
  const script = serverScriptIn(dist)
  t.match(script, /^server-script-\w+\.js$/, 'the script is named after its content')
  // The training process runs the emulator and the stand-in from their sources only in part: its
  // coverage, taken by other means than this process's, would lower theirs in the suite's report.
  t.ok(writeServerCodeCache(dist, { _TAPJS_PROCESSINFO_COVERAGE_: '0' }) > 100_000, 'the training run launched one run at once and one by its Cloud Tasks timer (it fails otherwise), and wrote a cache')
  t.same(readdirSync(dist).filter(file => file.endsWith('.cache')), [codeCacheOf(script)], 'beside the script, named after it')

  const env = (name: string, extra: Record<string, string> = {}): Record<string, string | undefined> => ({
    ...parentEnv(),
    PUSHPOOL_STORE_URL: `sqlite:${join(dir, `${name}.db`)}`,
    PUSHPOOL_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    PREFECT_API_URL: 'http://127.0.0.1:9/api',
    LOG_LEVEL: 'info',
    ...extra
  })
  const startedWith = async (name: string, extra?: Record<string, string>): Promise<string[]> => {
    const server = await startService(t, { args: [join(dist, 'server.js')], env: env(name, extra) })
    const { code } = await server.stop()
    t.equal(code, 0, `${name}: stops cleanly`)
    return codeCacheStates(server.output())
  }
  t.same(await startedWith('trained'), ['accepted'], 'V8 takes the cache the build trained')
  t.same(await startedWith('disabled', { NODE_DISABLE_COMPILE_CACHE: '1' }), ['disabled'], 'NODE_DISABLE_COMPILE_CACHE=1 turns it off')
  rmSync(join(dist, codeCacheOf(script)))
  t.notOk(existsSync(join(dist, codeCacheOf(script))))
  t.same(await startedWith('absent'), ['absent'], 'without one, the server starts all the same')
})
