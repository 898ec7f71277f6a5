// The dispatcher's and reconcile's decisions on their own: plain objects in, a verdict out, no
// peers. The real-peer suites (dispatch, lifecycle, reliability) show the same rules end to end.
import t from 'tap'
import type { FlowRun, OrchestrationResult, State } from '../../src/prefect/types.ts'
import type { Dispatch } from '../../src/store/store.ts'
import {
  crashMessage, deferUntil, dispatchKey, isOwnPending, judgeAttempt, judgeEndedExecution, judgePendingReply, judgeRunning,
  mustReadExecution, pendingMessage, stillToLaunch, timerFor, timerIsDue, triage
} from '../../src/dispatch/decisions.ts'

const NOW = new Date('2026-12-06T12:00:00.000Z')

function state (type: State['type'], name: string, extra: Partial<State> = {}): State {
  return { id: `state-${name}`, type, name, timestamp: NOW.toISOString(), message: null, state_details: {}, ...extra } as State
}

function run (overrides: Partial<FlowRun> = {}): FlowRun {
  return {
    id: 'run-1', name: 'brave-fox', flow_id: 'flow-1', deployment_id: 'dep-1', work_queue_id: null, work_queue_name: null,
    work_pool_id: 'pool-1', work_pool_name: 'pool', state: state('SCHEDULED', 'Scheduled'), state_type: 'SCHEDULED', state_name: 'Scheduled',
    infrastructure_pid: null, job_variables: {}, expected_start_time: null, next_scheduled_start_time: null, start_time: null,
    labels: {}, tags: [], parameters: {}, run_count: 0, ...overrides
  } as FlowRun
}

function dispatch (overrides: Partial<Dispatch> = {}): Dispatch {
  return {
    id: 'd-1', key: 'run-1:state-old', flowRunId: 'run-1', flowRunName: null, pool: 'pool', deploymentId: 'dep-1', deploymentName: null,
    flowName: null, scheduledAt: null, state: 'received',
    attempts: 0, dueAt: null, project: 'p', region: 'r', jobName: 'projects/p/locations/r/jobs/j', executionName: 'projects/p/locations/r/jobs/j/executions/j-1',
    logUri: 'https://console.cloud.google.com/logs', keepJob: false, executionMayExist: false, gcpIdentity: null, lease: null, cancelRequestedAt: null, jobSpec: null, error: null,
    receivedAt: NOW.toISOString(), launchedAt: NOW.toISOString(), createdAt: NOW.toISOString(), updatedAt: NOW.toISOString(), ...overrides
  }
}

t.test('triage: what a flow run read from Prefect asks of pushpool', async t => {
  t.same(triage('run-x', null, ['pool']), { kind: 'ignore', reason: 'flow run run-x does not exist in Prefect' })
  t.match(triage('run-1', run({ work_pool_name: 'other' }), ['pool']), { kind: 'ignore', reason: /work pool other is not served/ })
  t.match(triage('run-1', run({ work_pool_name: null }), ['pool']), { kind: 'ignore', reason: /work pool \(none\)/ })
  t.same(triage('run-1', run({ state: state('CANCELLING', 'Cancelling') }), ['pool']), { kind: 'cancelling' })
  t.same(triage('run-1', run({ state: state('RUNNING', 'Running') }), ['pool']), { kind: 'not-dispatchable' })
  t.same(triage('run-1', run({ state: null }), ['pool']), { kind: 'not-dispatchable' })
  t.same(triage('run-1', run({ state: state('SCHEDULED', 'Late') }), ['pool']), { kind: 'dispatchable' })
})

t.test('deferral: a run due beyond the prefetch window waits for its time; one within it launches now', async t => {
  const at = (seconds: number): FlowRun => run({ state: state('SCHEDULED', 'Scheduled', { state_details: { scheduled_time: new Date(NOW.getTime() + seconds * 1000).toISOString() } }) })
  t.equal(deferUntil(at(5), NOW, 10), null)
  t.equal(deferUntil(at(10), NOW, 10), null, 'exactly at the edge of the window: now')
  t.equal(deferUntil(at(11), NOW, 10)?.toISOString(), '2026-12-06T12:00:11.000Z')
  t.equal(deferUntil(at(-60), NOW, 10), null, 'overdue: now')
  t.equal(deferUntil(run({ next_scheduled_start_time: '2026-12-06T13:00:00.000Z' }), NOW, 10)?.toISOString(), '2026-12-06T13:00:00.000Z',
    'without a scheduled time on the state, the run\'s next start time')
  t.equal(deferUntil(run(), NOW, 10), null, 'no time at all: now')
})

t.test('attempts: a retry is new, a restatement belongs to the attempt under way, a waiting one is superseded', async t => {
  const late = run({ state: state('SCHEDULED', 'Late') })
  t.same(judgeAttempt(late, null), { kind: 'new' })
  t.same(judgeAttempt(late, dispatch({ state: 'succeeded' })), { kind: 'new' }, 'a finished attempt is no obstacle')
  t.same(judgeAttempt(late, dispatch({ key: dispatchKey(late), state: 'launched' })), { kind: 'new' }, 'the same state again is the key\'s to answer')
  const launched = dispatch({ state: 'launched' })
  t.same(judgeAttempt(late, launched), { kind: 'current', dispatch: launched })
  const waiting = dispatch({ state: 'deferred' })
  t.same(judgeAttempt(late, waiting), { kind: 'supersede', dispatch: waiting })
  t.same(judgeAttempt(run({ state: state('SCHEDULED', 'AwaitingRetry') }), launched), { kind: 'new' }, 'AwaitingRetry always starts an attempt')
  t.same(judgeAttempt(run({ state: state('SCHEDULED', 'Resuming') }), launched), { kind: 'new' })
})

t.test('a waiting dispatch is still to launch unless its run moved on', async t => {
  const waiting = dispatch({ key: 'run-1:state-Scheduled', state: 'deferred' })
  const at = (seconds: number): string => new Date(NOW.getTime() + seconds * 1000).toISOString()
  t.same(stillToLaunch(waiting, run(), NOW, 10), { go: true }, 'the state dispatched')
  t.same(stillToLaunch(waiting, run({ state: state('SCHEDULED', 'Late') }), NOW, 10), { go: true }, 'restated as Late, due now: the same attempt')
  t.match(stillToLaunch(waiting, run({ state: state('SCHEDULED', 'Scheduled', { id: 'state-new', state_details: { scheduled_time: at(600) } }) }), NOW, 10),
    { go: false, why: /rescheduled to 2026-12-06T12:10:00.000Z/ })
  t.match(stillToLaunch(waiting, run({ state: state('SCHEDULED', 'AwaitingRetry') }), NOW, 10), { go: false, why: /new attempt/ })
  t.match(stillToLaunch(waiting, run({ state: state('CANCELLED', 'Cancelled') }), NOW, 10), { go: false, why: /Cancelled now/ })
  t.match(stillToLaunch(waiting, run({ state: state('PENDING', 'Pending') }), NOW, 10), { go: false, why: /Pending now/ })
  t.same(stillToLaunch(waiting, run({ state: state('PENDING', 'Pending', { message: pendingMessage(waiting) }) }), NOW, 10), { go: true },
    'Pending under its own proposal, whose reply was lost: still its to launch')
  t.match(stillToLaunch(waiting, run({ state: state('PENDING', 'Pending', { message: pendingMessage(dispatch({ id: 'another' })) }) }), NOW, 10),
    { go: false, why: /Pending now/ }, 'another dispatch\'s Pending is not')
})

t.test('Pending replies: accept, wait (at least 1 s, 5 s when Prefect names none), or refused', async t => {
  const reply = (status: OrchestrationResult['status'], details: Partial<OrchestrationResult['details']> = {}): OrchestrationResult =>
    ({ status, state: null, details: { type: `${status.toLowerCase()}_details`, ...details } }) as OrchestrationResult
  t.same(judgePendingReply(reply('ACCEPT')), { kind: 'accepted' })
  t.same(judgePendingReply(reply('WAIT', { delay_seconds: 12 })), { kind: 'wait', seconds: 12 })
  t.same(judgePendingReply(reply('WAIT', { delay_seconds: 0 })), { kind: 'wait', seconds: 1 })
  t.same(judgePendingReply(reply('WAIT')), { kind: 'wait', seconds: 5 })
  t.same(judgePendingReply(reply('ABORT')), { kind: 'refused' })
  t.same(judgePendingReply(reply('REJECT')), { kind: 'refused' })
  const mine = dispatch()
  t.ok(isOwnPending(run({ state: state('PENDING', 'Pending', { message: pendingMessage(mine) }) }), mine), 'our lost proposal, applied')
  t.notOk(isOwnPending(run({ state: state('PENDING', 'Pending', { message: pendingMessage(dispatch({ id: 'd-2' })) }) }), mine), 'another dispatch\'s')
  t.notOk(isOwnPending(run({ state: state('RUNNING', 'Running', { message: pendingMessage(mine) }) }), mine))
  t.notOk(isOwnPending(null, mine))
})

t.test('reconcile reads an execution only when a decision needs it', async t => {
  const completed = run({ state: state('COMPLETED', 'Completed') })
  t.notOk(mustReadExecution(dispatch(), completed, 'reuse'), 'a finished run with its log link: no read')
  t.ok(mustReadExecution(dispatch(), run({ state: state('RUNNING', 'Running') }), 'reuse'), 'a run Prefect does not hold as over')
  t.ok(mustReadExecution(dispatch(), null, 'reuse'), 'a run gone from Prefect')
  t.ok(mustReadExecution(dispatch({ logUri: null }), completed, 'reuse'), 'the log link is still to learn')
  t.ok(mustReadExecution(dispatch(), completed, 'per-run'), 'a per-run job to delete once its execution is seen ended')
  t.notOk(mustReadExecution(dispatch({ keepJob: true }), completed, 'per-run'), 'unless the pool keeps it')
})

t.test('a running execution of a Cancelling run is cancelled once its grace period is over', async t => {
  const cancelling = run({ state: state('CANCELLING', 'Cancelling') })
  t.equal(judgeRunning(dispatch({ dueAt: null }), cancelling, NOW), 'wait', 'no cancellation was requested')
  t.equal(judgeRunning(dispatch({ dueAt: '2026-12-06T12:00:01.000Z' }), cancelling, NOW), 'wait', 'within the grace period')
  t.equal(judgeRunning(dispatch({ dueAt: '2026-12-06T11:59:59.000Z' }), cancelling, NOW), 'enforce-cancel')
  t.equal(judgeRunning(dispatch({ dueAt: '2026-12-06T11:59:59.000Z' }), run({ state: state('RUNNING', 'Running') }), NOW), 'wait', 'no longer Cancelling')
})

t.test('an ended execution closes the record as Prefect holds the run, or crashes a run it left behind', async t => {
  const failed = { outcome: 'failed' as const, message: 'The configured timeout was reached.', logUri: null, createTime: null, durationSeconds: null }
  t.same(judgeEndedExecution(run({ state: state('FAILED', 'Failed') }), failed, null), { kind: 'terminal', to: 'failed' })
  t.same(judgeEndedExecution(run({ state: state('CANCELLED', 'Cancelled') }), failed, null), { kind: 'terminal', to: 'cancelled' })
  t.same(judgeEndedExecution(null, failed, null), { kind: 'succeeded', detail: 'execution ended; the flow run no longer exists' })
  t.same(judgeEndedExecution(run({ state: state('RUNNING', 'Running') }), { outcome: 'succeeded', message: null, logUri: null, createTime: null, durationSeconds: null }, null),
    { kind: 'succeeded', detail: 'execution succeeded' })
  t.same(judgeEndedExecution(run({ state: state('RUNNING', 'Running') }), failed, 'https://logs'), {
    kind: 'crash',
    message: 'Flow run infrastructure exited before the run finished: the Cloud Run execution failed: The configured timeout was reached. Logs: https://logs'
  }, 'one period, not two, after a reason that ends with one')
  t.match(judgeEndedExecution(run({ state: state('PENDING', 'Pending') }), { outcome: 'missing', message: null, logUri: null, createTime: null, durationSeconds: null }, null),
    { kind: 'crash', message: /the Cloud Run execution disappeared\.$/ })
  t.match(judgeEndedExecution(run({ state: state('RUNNING', 'Running') }), { outcome: 'cancelled', message: null, logUri: null, createTime: null, durationSeconds: null }, null),
    { kind: 'crash', message: /was cancelled outside Prefect: no reason given\.$/ })
})

t.test('a waiting dispatch\'s timer: early by the prefetch for a wait longer than it, on time for a shorter one', async t => {
  const rest = '2026-12-06T12:00:00.000Z'
  t.equal(timerFor(dispatch({ state: 'deferred', updatedAt: rest, dueAt: '2026-12-06T12:10:00.000Z' }), 10)?.fireAt.toISOString(),
    '2026-12-06T12:09:50.000Z', 'deferred to its scheduled time: fires prefetch early')
  t.equal(timerFor(dispatch({ state: 'deferred', updatedAt: rest, dueAt: '2026-12-06T12:00:05.000Z' }), 10)?.fireAt.toISOString(),
    '2026-12-06T12:00:05.000Z', 'a limit\'s 5 s recheck fires at its time, never at once')
  t.equal(timerFor(dispatch({ state: 'retrying', updatedAt: rest, dueAt: '2026-12-06T12:00:30.000Z' }), 10)?.fireAt.toISOString(), '2026-12-06T12:00:20.000Z')
  t.equal(timerFor(dispatch({ state: 'launched', dueAt: '2026-12-06T12:10:00.000Z' }), 10), null, 'only a waiting dispatch has one')
  t.equal(timerFor(dispatch({ state: 'deferred', dueAt: null }), 10), null)
  const a = timerFor(dispatch({ state: 'deferred', updatedAt: rest, dueAt: '2026-12-06T12:10:00.000Z' }), 10)
  const b = timerFor(dispatch({ state: 'deferred', updatedAt: rest, dueAt: '2026-12-06T12:10:00.000Z' }), 10)
  t.same(a, b, 'the same wait, the same timer, whoever arms it')
})

t.test('a timer fires its dispatch only when the dispatch waits for that time, not a later one', async t => {
  const retrying = dispatch({ state: 'retrying', updatedAt: '2026-12-06T12:00:00.000Z', dueAt: '2026-12-06T12:00:05.000Z' })
  t.ok(timerIsDue(retrying, new Date('2026-12-06T12:00:05.000Z'), 10), 'at its time')
  t.ok(timerIsDue(retrying, new Date('2026-12-06T12:00:04.500Z'), 10), 'a little early: clocks and deliveries are not exact')
  t.notOk(timerIsDue(retrying, new Date('2026-12-06T12:00:02.000Z'), 10), 'an earlier timer, the dispatch since put back to wait longer: stale')
  const deferred = dispatch({ state: 'deferred', updatedAt: '2026-12-06T12:00:00.000Z', dueAt: '2026-12-06T12:10:00.000Z' })
  t.ok(timerIsDue(deferred, new Date('2026-12-06T12:09:50.000Z'), 10), 'a scheduled run\'s timer, the prefetch early')
  t.notOk(timerIsDue(deferred, new Date('2026-12-06T12:05:00.000Z'), 10))
  t.ok(timerIsDue(dispatch({ state: 'received', dueAt: null }), NOW, 10), 'a dispatch that waits for no time: drivability decides')
})

t.test('a crash names the exit code its container logged, as Prefect\'s worker words it, then Cloud Run\'s reason', async t => {
  const failed = { outcome: 'failed' as const, message: 'Task x failed with message: The container exited with an error.', logUri: null, createTime: null, durationSeconds: null }
  t.equal(crashMessage(failed, 'https://logs', 3),
    'Flow run infrastructure exited with non-zero status code 3. Process exited with an unexpected status code. ' +
    'The Cloud Run execution failed: Task x failed with message: The container exited with an error. Logs: https://logs')
  t.equal(crashMessage(failed, null, null),
    'Flow run infrastructure exited before the run finished: the Cloud Run execution failed: Task x failed with message: The container exited with an error.')
  t.equal(crashMessage(failed, null, 0), crashMessage(failed, null, null), 'exit 0 under a failed execution names no code')
  t.match(crashMessage(failed, null, 137), /^Flow run infrastructure exited with non-zero status code 137\. /)
})
