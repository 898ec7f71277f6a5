// startPrefectServer's own promises: a scratch home that stop() removes, a process that stop()
// ends, and a start-up failure that says why. This file starts its own server (not the shared one).

import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startPrefectServer } from '../../src/devstack/prefect-server.ts'
import { testVenv } from '../harness/test-env.ts'

const venv = await testVenv()

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('a server with the dashboard; stop() ends it and removes its scratch PREFECT_HOME', async (t) => {
  const started = Date.now()
  const server = await startPrefectServer({ venv, ui: true })
  t.comment(`server started in ${Date.now() - started} ms`)
  t.teardown(() => server.stop())

  t.match(server.apiUrl, /^http:\/\/127\.0\.0\.1:\d+\/api$/)
  t.equal(server.uiUrl, server.apiUrl.replace(/\/api$/, ''))
  t.equal(server.authString, undefined)
  t.ok(isRunning(server.pid))
  const flows = await fetch(`${server.apiUrl}/flows/filter`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(flows.status, 200, 'without an auth string the API is open')

  const dashboard = await fetch(`${server.uiUrl}/`)
  t.match(await dashboard.text(), /<!DOCTYPE html>/i, 'the dashboard is served')
  const uiSettings = await fetch(`${server.uiUrl}/ui-settings`).then((res) => res.json()) as { api_url: string }
  t.equal(uiSettings.api_url, server.apiUrl, 'and it talks to this server, not the default port')

  const home = (await fetch(`${server.apiUrl}/admin/settings`).then((res) => res.json()) as { home: string }).home
  t.match(home, /pushpool-prefect-/, 'a scratch home was made')
  t.ok(existsSync(home), 'the scratch home exists while the server runs')

  await server.stop()
  t.notOk(isRunning(server.pid), 'the process is gone')
  t.notOk(existsSync(home), 'the scratch home is gone')
  await t.rejects(fetch(`${server.apiUrl}/health`), 'nothing listens any more')
  await server.stop()
  t.pass('a second stop() is harmless')
})

t.test('a server that dies during start-up is reported with its last output', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => { blocker.close() })
  const port = (blocker.address() as AddressInfo).port

  await t.rejects(startPrefectServer({ venv, port }), {
    message: new RegExp(`Prefect server exited during start-up \\(exit code 1\\)[^]*Port ${port} is already in use`),
  })
})
