import t from 'tap'
import { createJob, errorCode, PARENT, rig } from './helpers.ts'

const r = await rig(t)

t.test('createJob returns a done operation with the job, server defaults applied', async t => {
  const [op] = await r.jobs.createJob({
    parent: PARENT,
    jobId: 'defaults',
    job: { labels: { team: 'data' }, template: { template: { containers: [{ image: 'img:1' }] } } }
  })
  t.equal(op.done, true)
  const [job] = await r.jobs.getJob({ name: `${PARENT}/jobs/defaults` })
  t.equal(job.name, `${PARENT}/jobs/defaults`)
  t.match(job.terminalCondition, { type: 'Ready', state: 'CONDITION_SUCCEEDED' })
  t.equal(job.template?.taskCount, 1)
  t.equal(job.template?.template?.maxRetries, 3, 'maxRetries defaults to 3 when unset')
  t.equal(job.template?.template?.timeout?.seconds, '600')
  t.same(job.template?.template?.containers?.[0].resources?.limits, { cpu: '1000m', memory: '512Mi' })
  t.same(job.labels, { team: 'data' })
  t.ok(job.uid)
  t.ok(job.etag)
  t.ok(Number(job.createTime?.seconds) > 1_700_000_000)
  t.equal(Number(job.executionCount), 0)
  t.equal(r.emu.jobs().find(j => j.name === job.name)?.template.template?.timeout, '600s', 'stored in REST form')
})

t.test('with jobReconcileMs, createJob\'s operation stays open that long and the client polls it to the job', async t => {
  const slow = await rig(t, { jobReconcileMs: 250 })
  const job = { template: { template: { containers: [{ image: 'img:1' }] } } }
  const began = performance.now()
  const [op] = await slow.jobs.createJob({ parent: PARENT, jobId: 'reconciling', job })
  t.equal(op.done, false, 'open when CreateJob answers')
  t.equal((op.metadata as { name?: string } | undefined)?.name, `${PARENT}/jobs/reconciling`, 'its metadata is the job')
  const [created] = await op.promise()
  // Timers may fire a little before the loop's clock says: the bound leaves room for that, not for an early answer.
  t.ok(performance.now() - began >= 200, 'done once the job is reconciled')
  t.equal(created.name, `${PARENT}/jobs/reconciling`, 'its response is the job')
  t.ok((slow.emu.calls().GetOperation ?? 0) >= 1, `the client polled GetOperation (${slow.emu.calls().GetOperation} times)`)
  const [checked] = await slow.jobs.createJob({ parent: PARENT, jobId: 'checked', job, validateOnly: true })
  t.equal(checked.done, true, 'a validate-only CreateJob is done at once')
})

t.test('an explicit maxRetries: 0 is kept', async t => {
  const name = await createJob(r, 'zero-retries')
  const [job] = await r.jobs.getJob({ name })
  t.equal(job.template?.template?.maxRetries, 0)
})

t.test('duplicate job id → ALREADY_EXISTS', async t => {
  await createJob(r, 'dup')
  const error = await r.jobs.createJob({ parent: PARENT, jobId: 'dup', job: { template: { template: { containers: [{ image: 'i' }] } } } })
    .catch((e: unknown) => e)
  t.equal(errorCode(error), 6)
  t.match((error as Error).message, "Resource 'dup' already exists.")
})

t.test('missing job → NOT_FOUND', async t => {
  const error = await r.jobs.getJob({ name: `${PARENT}/jobs/nope` }).catch((e: unknown) => e)
  t.equal(errorCode(error), 5)
  t.match((error as Error).message, /Resource 'nope' of kind 'JOB'/)
})

t.test('invalid jobs → INVALID_ARGUMENT', async t => {
  const container = { image: 'img' }
  const cases = {
    'bad job id': { jobId: 'Bad_Name', job: { template: { template: { containers: [container] } } } },
    'trailing dash': { jobId: 'bad-', job: { template: { template: { containers: [container] } } } },
    'no image': { jobId: 'no-image', job: { template: { template: { containers: [{ command: ['x'] }] } } } },
    'no containers': { jobId: 'no-containers', job: { template: { template: {} } } },
    'reserved label': { jobId: 'label', job: { labels: { 'run.googleapis.com/x': 'y' }, template: { template: { containers: [container] } } } },
    'reserved template annotation': {
      jobId: 'annotation',
      job: { template: { annotations: { 'autoscaling.knative.dev/max': '1' }, template: { containers: [container] } } }
    }
  }
  for (const [label, request] of Object.entries(cases)) {
    const error = await r.jobs.createJob({ parent: PARENT, ...request }).catch((e: unknown) => e)
    t.equal(errorCode(error), 3, label)
  }
  const noImage = await r.jobs.createJob({ parent: PARENT, ...cases['no image'] }).catch((e: unknown) => e)
  t.match((noImage as Error).message, /containers\[0\]\.image/)
  t.notOk(r.emu.jobs().some(j => j.name.endsWith('/label')), 'nothing stored')
})

t.test('validateOnly creates nothing', async t => {
  const [op] = await r.jobs.createJob({ parent: PARENT, jobId: 'dry', validateOnly: true, job: { template: { template: { containers: [{ image: 'i' }] } } } })
  t.equal(op.done, true)
  t.notOk(r.emu.jobs().some(j => j.name.endsWith('/dry')))
})

t.test('listJobs pages through every job of the location', async t => {
  await createJob(r, 'list-a')
  await createJob(r, 'list-b')
  const [jobs] = await r.jobs.listJobs({ parent: PARENT })
  const names = jobs.map(j => j.name)
  t.ok(names.includes(`${PARENT}/jobs/list-a`) && names.includes(`${PARENT}/jobs/list-b`))
  t.equal(names.length, r.emu.jobs().length)
  const paged: string[] = []
  r.emu.resetCalls()
  for await (const job of r.jobs.listJobsAsync({ parent: PARENT, pageSize: 1 })) paged.push(job.name ?? '')
  t.same(paged, names, 'the same jobs')
  t.equal(r.emu.calls().ListJobs, names.length, 'one call per page of one')
  const [elsewhere] = await r.jobs.listJobs({ parent: 'projects/p/locations/europe-west1' })
  t.same(elsewhere, [])
})

t.test('updateJob replaces the template and bumps the generation', async t => {
  const name = await createJob(r, 'update-me')
  const [op] = await r.jobs.updateJob({ job: { name, labels: { v: '2' }, template: { template: { containers: [{ image: 'img:2' }] } } } })
  t.equal(op.done, true)
  const [job] = await r.jobs.getJob({ name })
  t.equal(job.generation, '2')
  t.same(job.labels, { v: '2' })
  t.equal(job.template?.template?.containers?.[0].image, 'img:2')
  const missing = await r.jobs.updateJob({ job: { name: `${PARENT}/jobs/absent`, template: { template: { containers: [{ image: 'i' }] } } } })
    .catch((e: unknown) => e)
  t.equal(errorCode(missing), 5)
  await r.jobs.updateJob({ allowMissing: true, job: { name: `${PARENT}/jobs/absent`, template: { template: { containers: [{ image: 'i' }] } } } })
  t.ok(r.emu.jobs().some(j => j.name === `${PARENT}/jobs/absent`), 'allowMissing creates it')
})

t.test('deleteJob removes the job; deleting again → NOT_FOUND', async t => {
  const name = await createJob(r, 'delete-me')
  const [op] = await r.jobs.deleteJob({ name })
  t.equal(op.done, true)
  t.notOk(r.emu.jobs().some(j => j.name === name))
  t.equal(errorCode(await r.jobs.getJob({ name }).catch((e: unknown) => e)), 5)
  t.equal(errorCode(await r.jobs.deleteJob({ name }).catch((e: unknown) => e)), 5)
})

t.test('malformed names → INVALID_ARGUMENT', async t => {
  t.equal(errorCode(await r.jobs.getJob({ name: 'jobs/x' }).catch((e: unknown) => e)), 3)
  t.equal(errorCode(await r.jobs.listJobs({ parent: 'projects/p' }).catch((e: unknown) => e)), 3)
})
