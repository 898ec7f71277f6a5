// The Prefect adapter's HTTP behaviour against a loopback server that misbehaves on purpose: what
// a real Prefect server cannot be made to do on demand (hang, cut a reply off, redirect, drop a
// kept-alive connection). The happy paths run against the real server in every dispatch test.
import t from 'tap'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { PrefectClient, PrefectRequestError, PrefectUnavailable } from '../../src/prefect/client.ts'

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, socket: Socket) => void

const server = http.createServer()
const sockets = new Set<Socket>()
server.on('connection', socket => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
let handler: Handler = (_req, res) => { res.end('{}') }
server.on('request', (req, res) => { handler(req, res, req.socket) })
await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`
t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })

const client = (timeoutMs = 2000): PrefectClient => {
  const c = new PrefectClient({ apiUrl: base, authString: 'user:pass', apiKey: null, timeoutMs })
  t.teardown(() => { c.close() })
  return c
}

const json = (res: http.ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

t.test('a read: auth and API version headers, JSON back, 404 as null, one kept-alive connection', async t => {
  const seen: Array<{ url: string, auth: string | undefined, version: string | undefined, port: number }> = []
  handler = (req, res, socket) => {
    seen.push({ url: req.url ?? '', auth: req.headers.authorization, version: req.headers['x-prefect-api-version'] as string, port: socket.remotePort ?? 0 })
    if (req.url?.endsWith('/missing') === true) return json(res, 404, { detail: 'not found' })
    json(res, 200, { id: 'run-1', name: 'n' })
  }
  const c = client()
  t.same(await c.readFlowRun('run-1'), { id: 'run-1', name: 'n' })
  t.equal(await c.readFlowRun('missing'), null)
  t.equal(seen[0].url, '/api/flow_runs/run-1')
  t.equal(seen[0].auth, `Basic ${Buffer.from('user:pass').toString('base64')}`)
  t.equal(seen[0].version, '0.8.4')
  t.equal(seen[0].port, seen[1].port, 'the second request reuses the connection')
})

t.test('a body goes out as JSON with its length', async t => {
  let received: { body: string, length: string | undefined, type: string | undefined } | null = null
  handler = (req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', chunk => { body += chunk })
    req.on('end', () => {
      received = { body, length: req.headers['content-length'], type: req.headers['content-type'] }
      json(res, 201, { status: 'ACCEPT', details: {}, state: { type: 'PENDING' } })
    })
  }
  const result = await client().setFlowRunState('run-1', { type: 'PENDING', name: 'Pending', message: 'é' }, false)
  t.equal(result.status, 'ACCEPT')
  const got = received as unknown as { body: string, length: string, type: string }
  t.same(JSON.parse(got.body), { state: { type: 'PENDING', name: 'Pending', message: 'é' }, force: false })
  t.equal(Number(got.length), Buffer.byteLength(got.body), 'content-length counts bytes, not characters')
  t.equal(got.type, 'application/json')
})

t.test('503 is retried, then given up as retry-later; 401 and 422 are never-retry with what to fix', async t => {
  let calls = 0
  handler = (_req, res) => { calls++; json(res, 503, { detail: 'database is locked' }) }
  const err = await client().readFlowRun('x').catch((e: unknown) => e)
  t.ok(err instanceof PrefectUnavailable)
  t.equal((err as PrefectUnavailable).status, 503)
  t.equal(calls, 4, 'three retries after the first call')

  handler = (_req, res) => { json(res, 401, { detail: 'no' }) }
  const refused = await client().readFlowRun('x').catch((e: unknown) => e)
  t.ok(refused instanceof PrefectRequestError)
  t.match((refused as Error).message, /check PREFECT_API_AUTH_STRING or PREFECT_API_KEY/)

  handler = (_req, res) => { json(res, 422, { detail: 'bad state' }) }
  const rejected = await client().setFlowRunState('x', { type: 'PENDING', name: 'Pending' }, false).catch((e: unknown) => e)
  t.ok(rejected instanceof PrefectRequestError)
  t.match((rejected as Error).message, /answered 422: \{"detail":"bad state"\}/)
})

t.test('a redirect is not followed and says which URL to configure', async t => {
  handler = (_req, res) => { res.writeHead(307, { location: 'https://prefect.example/api/flow_runs/x' }); res.end() }
  const err = await client().readFlowRun('x').catch((e: unknown) => e)
  t.ok(err instanceof PrefectRequestError)
  t.match((err as Error).message, /answered 307, a redirect to https:\/\/prefect\.example\/api\/flow_runs\/x: set PREFECT_API_URL/)
})

t.test('a reply that is not JSON points at PREFECT_API_URL', async t => {
  handler = (_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<html>UI</html>') }
  const err = await client().readFlowRun('x').catch((e: unknown) => e)
  t.ok(err instanceof PrefectRequestError)
  t.match((err as Error).message, /not JSON: is PREFECT_API_URL .* the API URL/)
})

t.test('no reply in time, a reply cut off, and no server at all are retry-later, each said plainly', async t => {
  handler = () => {} // never answers
  const slow = await client(200).readFlowRun('x').catch((e: unknown) => e)
  t.ok(slow instanceof PrefectUnavailable)
  t.match((slow as Error).message, /GET \/flow_runs\/\{id\} timed out after 200 ms/)

  handler = (_req, res, socket) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
    res.write('{"id":')
    setTimeout(() => socket.destroy(), 20)
  }
  const cut = await client().readFlowRun('x').catch((e: unknown) => e)
  t.ok(cut instanceof PrefectUnavailable)
  t.match((cut as Error).message, /reply was cut off/)

  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
    res.write('{"id":') // the rest never comes
  }
  const stalled = await client(200).readFlowRun('x').catch((e: unknown) => e)
  t.match((stalled as Error).message, /reply was cut off/, 'a body still arriving when the time runs out')

  const closed = http.createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as AddressInfo).port
  await new Promise(resolve => closed.close(resolve))
  const nobody = new PrefectClient({ apiUrl: `http://127.0.0.1:${port}/api`, authString: null, apiKey: null })
  const down = await nobody.readFlowRun('x').catch((e: unknown) => e)
  t.ok(down instanceof PrefectUnavailable)
  t.equal((down as PrefectUnavailable).status, null)
  t.match((down as Error).message, /GET \/flow_runs\/\{id\} is unreachable/)
  nobody.close()
})

t.test('a kept-alive connection the server drops as the next request goes out: sent once more on a new one', async t => {
  const ports: number[] = []
  handler = (_req, res, socket) => {
    ports.push(socket.remotePort ?? 0)
    // The second request on the first connection is met by the connection closing, unanswered.
    if (ports.length === 2) { socket.destroy(); return }
    json(res, 200, { id: 'run' })
  }
  const c = client()
  t.same(await c.readFlowRun('a'), { id: 'run' })
  t.same(await c.readFlowRun('b'), { id: 'run' })
  t.equal(ports.length, 3)
  t.equal(ports[0], ports[1], 'the second request went out on the kept-alive connection')
  t.not(ports[2], ports[1], 'and was sent again on a new one')
})

t.test('an https URL is spoken in TLS: a plain-HTTP server there sees a handshake, not a request', async t => {
  const seen: string[] = []
  handler = (req, res) => { seen.push(req.url ?? ''); json(res, 200, {}) }
  const tls = new PrefectClient({ apiUrl: base.replace('http:', 'https:'), authString: null, apiKey: null, timeoutMs: 2000 })
  t.teardown(() => { tls.close() })
  const err = await tls.readFlowRun('x').catch((e: unknown) => e)
  t.ok(err instanceof PrefectUnavailable)
  t.match((err as Error).message, /GET \/flow_runs\/\{id\} is unreachable/)
  t.same(seen, [], 'no HTTP request reached the server')
})
