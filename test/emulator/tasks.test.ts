// Cloud Tasks v2 through the real @google-cloud/tasks client: queues, named-task de-duplication,
// delivery at schedule_time with an OIDC token, retries with backoff, deletion, deadlines.
import { setTimeout as sleep } from 'node:timers/promises'
import { v2 } from '@google-cloud/tasks'
import t from 'tap'
import { GoogleIdTokenVerifier } from '../../src/auth/google-id-token.ts'
import { emulatorClientOptions, startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/index.ts'
import { errorCode } from './helpers.ts'
import { startHttpWorker, type HttpWorker } from './http-worker.ts'

const LOCATION = 'projects/p/locations/us-central1'
const INVOKER = 'tasks-invoker@p.iam.gserviceaccount.com'

type TasksClient = InstanceType<typeof v2.CloudTasksClient>
interface TasksRig { emu: Emulator, client: TasksClient, worker: HttpWorker }

async function tasksRig (options: EmulatorOptions = {}): Promise<TasksRig> {
  const emu = await startEmulator(options)
  const client = new v2.CloudTasksClient({ ...emulatorClientOptions(emu.endpoint), projectId: 'p' })
  t.teardown(async () => {
    await client.close()
    await emu.close()
  })
  return { emu, client, worker: await startHttpWorker(t) }
}

const r = await tasksRig()

let queues = 0
/** A new queue; backoffs in milliseconds so retries take a moment, not Google's defaults. */
async function createQueue (rig: TasksRig, retry: { minBackoffMs?: number, maxBackoffMs?: number, maxDoublings?: number, maxAttempts?: number } = {}): Promise<string> {
  const name = `${LOCATION}/queues/q-${++queues}`
  const duration = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 })
  await rig.client.createQueue({
    parent: LOCATION,
    queue: {
      name,
      retryConfig: {
        ...(retry.minBackoffMs ? { minBackoff: duration(retry.minBackoffMs) } : {}),
        ...(retry.maxBackoffMs ? { maxBackoff: duration(retry.maxBackoffMs) } : {}),
        ...(retry.maxDoublings ? { maxDoublings: retry.maxDoublings } : {}),
        ...(retry.maxAttempts ? { maxAttempts: retry.maxAttempts } : {})
      }
    }
  })
  return name
}

const at = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 })
const outcome = (promise: Promise<unknown>): Promise<number | undefined> => promise.then(() => undefined, (e: unknown) => errorCode(e))

t.test('queues: created with Google\'s defaults; a second create → ALREADY_EXISTS; a missing one → NOT_FOUND', async t => {
  const name = `${LOCATION}/queues/defaults`
  const [queue] = await r.client.createQueue({ parent: LOCATION, queue: { name } })
  t.equal(queue.state, 'RUNNING')
  t.match(queue.retryConfig, { maxAttempts: 100, maxDoublings: 16, minBackoff: { seconds: '0', nanos: 100_000_000 }, maxBackoff: { seconds: '3600' } })
  t.match(queue.rateLimits, { maxDispatchesPerSecond: 500, maxConcurrentDispatches: 1000 })
  const [got] = await r.client.getQueue({ name })
  t.equal(got.name, name)
  t.equal(await outcome(r.client.createQueue({ parent: LOCATION, queue: { name } })), 6)
  const missing = await r.client.getQueue({ name: `${LOCATION}/queues/absent` }).catch((e: unknown) => e)
  t.equal(errorCode(missing), 5)
  t.equal(await outcome(r.client.createQueue({ parent: LOCATION, queue: { name: `${LOCATION}/queues/bad_name` } })), 3)
  t.ok(r.emu.queues().some(q => q.name === name))
})

t.test('CreateTask on a missing queue → NOT_FOUND, with Google\'s message', async t => {
  const error = await r.client.createTask({ parent: `${LOCATION}/queues/absent`, task: { httpRequest: { url: r.worker.url } } }).catch((e: unknown) => e)
  t.equal(errorCode(error), 5)
  t.match((error as Error).message, 'Queue does not exist. If you just created the queue, wait at least a minute for the queue to initialize.')
})

t.test('a named task de-duplicates: the second CreateTask → ALREADY_EXISTS, one task; unnamed tasks get an id', async t => {
  const queue = await createQueue(r)
  const name = `${queue}/tasks/run-4f2a9c`
  const later = at(Date.now() + 3600_000)
  const [created] = await r.client.createTask({ parent: queue, task: { name, scheduleTime: later, httpRequest: { url: r.worker.url } } })
  t.equal(created.name, name)
  const second = await r.client.createTask({ parent: queue, task: { name, scheduleTime: later, httpRequest: { url: r.worker.url } } }).catch((e: unknown) => e)
  t.equal(errorCode(second), 6)
  t.match((second as Error).message, 'Requested entity already exists')
  const [a] = await r.client.createTask({ parent: queue, task: { scheduleTime: later, httpRequest: { url: r.worker.url } } })
  const [b] = await r.client.createTask({ parent: queue, task: { scheduleTime: later, httpRequest: { url: r.worker.url } } })
  t.match(a.name, new RegExp(`^${queue}/tasks/\\d{1,20}$`))
  t.not(a.name, b.name)
  const [listed] = await r.client.listTasks({ parent: queue })
  t.same(listed.map(task => task.name).sort(), [name, a.name, b.name].sort(), 'one task for the name, and the two unnamed')
  t.equal(r.emu.tasks().filter(task => task.name === name).length, 1)
})

t.test('delivery at schedule_time: method, headers, body, and a verifiable OIDC token; then the task is gone and its name still taken', async t => {
  const queue = await createQueue(r)
  const name = `${queue}/tasks/timer-1`
  const due = Date.now() + 1200
  const audience = 'https://pushpool.example.run.app'
  const [created] = await r.client.createTask({
    parent: queue,
    task: {
      name,
      scheduleTime: at(due),
      httpRequest: {
        url: `${r.worker.url}/v1/timers/fire?x=1`,
        httpMethod: 'PUT',
        headers: { 'Content-Type': 'application/json', 'X-Run': 'abc', 'User-Agent': 'ignored' },
        body: Buffer.from('{"run":"abc"}'),
        oidcToken: { serviceAccountEmail: INVOKER, audience }
      }
    }
  })
  t.equal(created.view, 'BASIC')
  t.equal(created.httpRequest?.body?.length ?? 0, 0, 'the BASIC view leaves the body out')
  const [request] = await r.worker.waitForRequests(1)
  t.ok(request.at >= due, `not delivered before schedule_time (${request.at - due} ms after)`)
  t.equal(request.method, 'PUT')
  t.equal(request.path, '/v1/timers/fire?x=1')
  t.equal(request.body.toString(), '{"run":"abc"}')
  t.match(request.headers, {
    'content-type': 'application/json',
    'x-run': 'abc',
    'user-agent': 'Google-Cloud-Tasks',
    'x-cloudtasks-queuename': queue.split('/').at(-1),
    'x-cloudtasks-taskname': 'timer-1',
    'x-cloudtasks-taskretrycount': '0',
    'x-cloudtasks-taskexecutioncount': '0'
  })
  t.equal(Math.round(Number(request.headers['x-cloudtasks-tasketa']) * 1000), due, 'X-CloudTasks-TaskETA is the schedule time in seconds')
  const token = String(request.headers.authorization).replace(/^Bearer /, '')
  const identity = await new GoogleIdTokenVerifier({ certsUrl: r.emu.certsUrl, audience }).verify(token)
  t.same(identity, { email: INVOKER, emailVerified: true })

  const end = await r.emu.waitForTask(name)
  t.equal(end.outcome, 'succeeded')
  t.match(end.task, { dispatchCount: 1, responseCount: 1, lastAttempt: { responseStatus: { code: 0 } } })
  const gone = await r.client.getTask({ name }).catch((e: unknown) => e)
  t.equal(errorCode(gone), 5)
  t.match((gone as Error).message, 'The task no longer exists, though a task with this name existed recently.')
  t.equal(await outcome(r.client.createTask({ parent: queue, task: { name, httpRequest: { url: r.worker.url } } })), 6,
    'the name of a delivered task stays taken')
  t.equal(r.emu.taskDeliveries().filter(d => d.task === name).length, 1)
})

t.test('without an audience the OIDC token is for the task\'s URL; without oidc_token no Authorization is added', async t => {
  const queue = await createQueue(r)
  const url = `${r.worker.url}/hook`
  const before = r.worker.requests.length
  const [withToken] = await r.client.createTask({ parent: queue, task: { httpRequest: { url, oidcToken: { serviceAccountEmail: INVOKER } } } })
  await r.emu.waitForTask(withToken.name!)
  const [plain] = await r.client.createTask({ parent: queue, task: { httpRequest: { url, headers: { Authorization: 'Bearer own' } } } })
  await r.emu.waitForTask(plain.name!)
  const [first, second] = r.worker.requests.slice(before)
  const token = String(first.headers.authorization).replace(/^Bearer /, '')
  t.same(await new GoogleIdTokenVerifier({ certsUrl: r.emu.certsUrl, audience: url }).verify(token), { email: INVOKER, emailVerified: true })
  t.equal(second.headers.authorization, 'Bearer own', 'the task\'s own header is sent as is')
})

t.test('a 500 is retried with the queue\'s backoff, then a 200 ends the task', async t => {
  const queue = await createQueue(r, { minBackoffMs: 200, maxBackoffMs: 10_000, maxDoublings: 4 })
  const before = r.worker.requests.length
  r.worker.answer(n => n - before < 2 ? 500 : 200)
  t.teardown(() => r.worker.answer(() => 200))
  const [task] = await r.client.createTask({ parent: queue, task: { httpRequest: { url: `${r.worker.url}/flaky` } } })
  const end = await r.emu.waitForTask(task.name!)
  t.equal(end.outcome, 'succeeded')
  const requests = r.worker.requests.slice(before)
  t.equal(requests.length, 3)
  t.ok(requests[1].at - requests[0].at >= 200, `first retry after min_backoff (${requests[1].at - requests[0].at} ms)`)
  t.ok(requests[2].at - requests[1].at >= 400, `second retry after twice that (${requests[2].at - requests[1].at} ms)`)
  t.same(requests.map(req => req.headers['x-cloudtasks-taskretrycount']), ['0', '1', '2'])
  t.same(requests.map(req => req.headers['x-cloudtasks-taskpreviousresponse']), [undefined, '500', '500'])
  t.same(requests.map(req => req.headers['x-cloudtasks-taskexecutioncount']), ['0', '0', '0'], '5xx answers are not executions')
  t.match(end.task, { dispatchCount: 3, responseCount: 3, firstAttempt: { dispatchTime: String }, lastAttempt: { responseStatus: { code: 0 } } })
})

t.test('retries stop at max_attempts: the task is dropped, its last status recorded', async t => {
  const queue = await createQueue(r, { minBackoffMs: 100, maxAttempts: 2 })
  r.worker.answer(() => 500)
  t.teardown(() => r.worker.answer(() => 200))
  const [task] = await r.client.createTask({ parent: queue, task: { httpRequest: { url: `${r.worker.url}/broken` } } })
  const end = await r.emu.waitForTask(task.name!)
  t.equal(end.outcome, 'exhausted')
  t.match(end.task, { dispatchCount: 2, responseCount: 2, lastAttempt: { responseStatus: { code: 13, message: 'INTERNAL(13): HTTP status code 500' } } })
  t.equal(errorCode(await r.client.getTask({ name: task.name! }).catch((e: unknown) => e)), 5)
})

t.test('a task deleted before its schedule_time is never delivered, and its name stays taken', async t => {
  const queue = await createQueue(r)
  const name = `${queue}/tasks/cancelled-run`
  const due = Date.now() + 2000
  await r.client.createTask({ parent: queue, task: { name, scheduleTime: at(due), httpRequest: { url: `${r.worker.url}/never` } } })
  await r.client.deleteTask({ name })
  t.ok(Date.now() < due, 'deleted before it was due')
  t.equal((await r.emu.waitForTask(name)).outcome, 'deleted')
  await sleep(due + 500 - Date.now())
  t.notOk(r.worker.requests.some(req => req.path === '/never'), 'never delivered')
  t.notOk(r.emu.taskDeliveries().some(d => d.task === name))
  t.equal(await outcome(r.client.deleteTask({ name })), 5, 'deleting again → NOT_FOUND')
  t.equal(await outcome(r.client.createTask({ parent: queue, task: { name, httpRequest: { url: r.worker.url } } })), 6)
})

t.test('a name is free again once the de-duplication window has passed', async t => {
  const short = await tasksRig({ taskDedupWindowMs: 2000 })
  const queue = await createQueue(short)
  const name = `${queue}/tasks/again`
  const later = at(Date.now() + 3600_000)
  await short.client.createTask({ parent: queue, task: { name, scheduleTime: later, httpRequest: { url: short.worker.url } } })
  await short.client.deleteTask({ name })
  const deletedAt = Date.now()
  t.equal(await outcome(short.client.createTask({ parent: queue, task: { name, scheduleTime: later, httpRequest: { url: short.worker.url } } })), 6)
  await sleep(deletedAt + 2100 - Date.now())
  t.equal(await outcome(short.client.createTask({ parent: queue, task: { name, scheduleTime: later, httpRequest: { url: short.worker.url } } })), undefined)
})

t.test('a worker that does not answer within the deadline: DEADLINE_EXCEEDED, and retried', async t => {
  const slow = await tasksRig({ taskDispatchDeadlineCapMs: 300 })
  const queue = await createQueue(slow, { minBackoffMs: 100 })
  slow.worker.answer(n => n === 0 ? 'hang' : 200)
  const [task] = await slow.client.createTask({ parent: queue, task: { dispatchDeadline: { seconds: 15 }, httpRequest: { url: `${slow.worker.url}/slow` } } })
  const end = await slow.emu.waitForTask(task.name!)
  t.equal(end.outcome, 'succeeded')
  const deliveries = slow.emu.taskDeliveries()
  t.equal(deliveries.length, 2)
  t.equal(deliveries[0].error, 'deadline exceeded')
  t.equal(deliveries[1].status, 200)
  t.match(end.task, { dispatchCount: 2, responseCount: 1 })
})

t.test('an unreachable worker is retried like a failed one', async t => {
  const queue = await createQueue(r, { minBackoffMs: 100, maxAttempts: 2 })
  const [task] = await r.client.createTask({ parent: queue, task: { httpRequest: { url: 'http://127.0.0.1:1/closed' } } })
  const end = await r.emu.waitForTask(task.name!)
  t.equal(end.outcome, 'exhausted')
  t.match(end.task, { dispatchCount: 2, responseCount: 0, lastAttempt: { responseStatus: { code: 14 } } })
  t.same(r.emu.taskDeliveries().filter(d => d.task === task.name).map(d => d.error), ['ECONNREFUSED', 'ECONNREFUSED'])
})

t.test('a redirect is followed within the same attempt', async t => {
  const queue = await createQueue(r)
  const before = r.worker.requests.length
  r.worker.answer(n => n === before ? { status: 307, headers: { location: '/moved' } } : 200)
  t.teardown(() => r.worker.answer(() => 200))
  const [task] = await r.client.createTask({ parent: queue, task: { httpRequest: { url: `${r.worker.url}/old`, body: Buffer.from('kept') } } })
  const end = await r.emu.waitForTask(task.name!)
  t.match(end, { outcome: 'succeeded', task: { dispatchCount: 1 } })
  const [first, second] = r.worker.requests.slice(before)
  t.same([first.path, second.path], ['/old', '/moved'])
  t.equal(second.method, 'POST', '307 repeats the method')
  t.equal(second.body.toString(), 'kept', 'and the body')
})

t.test('RunTask delivers a far-future task now', async t => {
  const queue = await createQueue(r)
  const [task] = await r.client.createTask({ parent: queue, task: { scheduleTime: at(Date.now() + 24 * 3600_000), httpRequest: { url: `${r.worker.url}/now` } } })
  await r.client.runTask({ name: task.name })
  t.equal((await r.emu.waitForTask(task.name!)).outcome, 'succeeded')
})

t.test('getTask, listTasks: BASIC leaves the body out, FULL has it; pages', async t => {
  const queue = await createQueue(r)
  const later = at(Date.now() + 3600_000)
  for (const id of ['a', 'b', 'c']) {
    await r.client.createTask({ parent: queue, task: { name: `${queue}/tasks/${id}`, scheduleTime: later, httpRequest: { url: r.worker.url, body: Buffer.from(id) } } })
  }
  const [basic] = await r.client.getTask({ name: `${queue}/tasks/a` })
  t.equal(basic.view, 'BASIC')
  t.equal(basic.httpRequest?.body?.length ?? 0, 0)
  const [full] = await r.client.getTask({ name: `${queue}/tasks/a`, responseView: 'FULL' })
  t.equal(full.view, 'FULL')
  t.equal(Buffer.from(full.httpRequest!.body!).toString(), 'a')
  const [page1, next] = await r.client.listTasks({ parent: queue, pageSize: 2, responseView: 'FULL' }, { autoPaginate: false })
  t.equal(page1.length, 2)
  const [page2] = await r.client.listTasks(next!, { autoPaginate: false })
  t.same([...page1, ...page2].map(task => Buffer.from(task.httpRequest!.body!).toString()).sort(), ['a', 'b', 'c'])
  t.equal(errorCode(await r.client.getTask({ name: `${queue}/tasks/never-made` }).catch((e: unknown) => e)), 5)
})

t.test('invalid tasks → INVALID_ARGUMENT', async t => {
  const queue = await createQueue(r)
  const cases: Record<string, Parameters<TasksClient['createTask']>[0]> = {
    'relative URL': { parent: queue, task: { httpRequest: { url: '/relative' } } },
    'body with GET': { parent: queue, task: { httpRequest: { url: r.worker.url, httpMethod: 'GET', body: Buffer.from('x') } } },
    'name in another queue': { parent: queue, task: { name: `${LOCATION}/queues/other/tasks/x`, httpRequest: { url: r.worker.url } } },
    'bad task id': { parent: queue, task: { name: `${queue}/tasks/has.dot`, httpRequest: { url: r.worker.url } } },
    'deadline under 15 s': { parent: queue, task: { dispatchDeadline: { seconds: 10 }, httpRequest: { url: r.worker.url } } },
    'no http_request': { parent: queue, task: {} },
    'OIDC without an account': { parent: queue, task: { httpRequest: { url: r.worker.url, oidcToken: { audience: 'x' } } } },
    'schedule beyond 30 days': { parent: queue, task: { scheduleTime: at(Date.now() + 31 * 24 * 3600_000), httpRequest: { url: r.worker.url } } }
  }
  for (const [label, request] of Object.entries(cases)) t.equal(await outcome(r.client.createTask(request)), 3, label)
  t.equal(await outcome(r.client.createTask({ parent: queue, task: { httpRequest: { url: r.worker.url, oauthToken: { serviceAccountEmail: INVOKER } } } })), 12,
    'OAuth tokens are not emulated: UNIMPLEMENTED, not a silent success')
})

t.test('faults and call counts apply to the Tasks RPCs', async t => {
  const queue = await createQueue(r)
  r.emu.resetCalls()
  r.emu.addFault({ method: 'CreateTask', code: 14, times: 1 })
  t.equal(await outcome(r.client.createTask({ parent: queue, task: { httpRequest: { url: r.worker.url } } })), 14, 'CreateTask is not retried by the client')
  r.emu.setRateLimit('CreateTask', 1)
  t.teardown(() => r.emu.setRateLimit('CreateTask', null))
  const [made] = await r.client.createTask({ parent: queue, task: { httpRequest: { url: r.worker.url } } })
  const limited = await r.client.createTask({ parent: queue, task: { httpRequest: { url: r.worker.url } } }).catch((e: unknown) => e)
  t.equal(errorCode(limited), 8)
  t.match((limited as Error).message, /cloudtasks\.googleapis\.com/)
  t.equal(r.emu.calls().CreateTask, 3)
  await r.emu.waitForTask(made.name!)
})
