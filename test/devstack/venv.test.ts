// ensurePrefectVenv: reuse of a healthy venv, building one with python3 -m venv + pip, and the
// errors a developer sees when that cannot work. Installing Prefect itself takes minutes, so the
// build is tried with a package that is already at hand and the health check is expected to fail.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ensurePrefectVenv } from '../../src/devstack/venv.ts'
import { testVenv } from '../harness/test-env.ts'

t.test('a healthy venv is reused without pip', async (t) => {
  const { dir } = await testVenv()
  const progress: string[] = []
  const started = Date.now()
  const venv = await ensurePrefectVenv({ dir, onProgress: (line) => progress.push(line) })
  t.same(venv, { dir, bin: join(dir, 'bin'), python: join(dir, 'bin', 'python'), prefect: join(dir, 'bin', 'prefect') })
  t.same(progress, [], 'pip was not run')
  t.comment(`checked in ${Date.now() - started} ms`)
})

t.test('a missing venv is created and pip-installed, then checked', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'pushpool-venv-'))
  t.teardown(() => rmSync(parent, { recursive: true, force: true }))
  const dir = join(parent, 'venv')
  const progress: string[] = []
  await t.rejects(ensurePrefectVenv({ dir, packages: ['pip'], onProgress: (line) => progress.push(line) }),
    { message: /still unusable after pip install: .*venv\/bin\/prefect is missing/ })
  t.match(progress[0], /^creating virtualenv .*venv with Python 3\.\d+/)
  t.ok(progress.includes('pip install pip'))
  t.ok(existsSync(join(dir, 'bin', 'python')), 'the virtualenv was made')
  t.notOk(existsSync(`${dir}.install-lock`), 'the install lock was released')
})

t.test('without python3 on PATH the error says so', async (t) => {
  const path = process.env.PATH
  process.env.PATH = '/nonexistent'
  t.teardown(() => { process.env.PATH = path })
  const dir = join(tmpdir(), `pushpool-venv-absent-${process.pid}`)
  await t.rejects(ensurePrefectVenv({ dir }), { message: /python3 was not found on PATH/ })
})

t.test('a venv whose installed versions miss a pin is installed again, not reused', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'pushpool-venv-'))
  t.teardown(() => rmSync(parent, { recursive: true, force: true }))
  const dir = join(parent, 'venv')
  t.equal(spawnSync('python3', ['-m', 'venv', dir]).status, 0)
  writeFileSync(join(dir, 'bin', 'prefect'), '') // present, so only the pins can be wrong
  // No index: the reinstall fails at once instead of reaching PyPI.
  const noIndex = process.env.PIP_NO_INDEX
  process.env.PIP_NO_INDEX = '1'
  t.teardown(() => { if (noIndex === undefined) delete process.env.PIP_NO_INDEX; else process.env.PIP_NO_INDEX = noIndex })
  const progress: string[] = []
  await t.rejects(ensurePrefectVenv({ dir, packages: ['pip>=999'], onProgress: (line) => progress.push(line) }),
    { message: /pip install pip>=999 into .*venv failed/ })
  t.ok(progress.includes('pip install pip>=999'), 'pip was asked to meet the pin')
})
