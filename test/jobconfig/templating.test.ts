import t from 'tap'
import { RetryLater, TemplateError } from '../../src/failures.ts'
import type { PrefectLookups } from '../../src/jobconfig/types.ts'
import { applyValues, findPlaceholders, getFromDict, NOT_SET, resolveBlockDocumentReferences, resolveVariables } from '../../src/jobconfig/templating.ts'
import type { BlockDocument } from '../../src/prefect/types.ts'

const BLOCKS: BlockDocument[] = [
  { id: 'b-secret', name: 'db-password', data: { value: 's3cr3t' }, block_type: { slug: 'secret', name: 'Secret' } },
  { id: 'b-json', name: 'settings', data: { value: { region: 'europe-west1', sizes: ['s', 'l'] } }, block_type: { slug: 'json', name: 'JSON' } },
  { id: 'b-creds', name: 'prod', data: { project: 'acme', service_account_info: { type: 'service_account' } }, block_type: { slug: 'gcp-credentials', name: 'GCP Credentials' } }
]

function lookups (variables: Record<string, unknown> = {}): PrefectLookups {
  return {
    readBlockDocument: async (id) => BLOCKS.find(b => b.id === id) ?? null,
    readBlockDocumentByName: async (slug, name) => BLOCKS.find(b => b.block_type?.slug === slug && b.name === name) ?? null,
    readVariable: async (name) => variables[name]
  }
}

t.test('placeholders', async (t) => {
  t.same(findPlaceholders('{{ a }}-{{b.c}}-{{ a }}-{{ $HOME }}-{{ prefect.blocks.x.y }}-{{ prefect.variables.v }}').map(p => [p.name, p.type]), [
    ['a', 'standard'], ['b.c', 'standard'], ['$HOME', 'env_var'], ['prefect.blocks.x.y', 'block_document'], ['prefect.variables.v', 'variable']
  ])
  t.same(findPlaceholders('{{ not a placeholder }} { { x } }'), [])
})

t.test('get_from_dict paths', async (t) => {
  const values = { a: { b: [10, { c: 'deep' }] }, text: 'abc', map: { 0: 'zero-key' } }
  t.equal(getFromDict(values, 'a.b[1].c'), 'deep')
  t.equal(getFromDict(values, 'a.b.0'), 10)
  t.equal(getFromDict(values, 'a.b[-1].c'), 'deep')
  t.equal(getFromDict(values, 'text.1'), 'b', 'a string is indexed like a list')
  t.equal(getFromDict(values, 'map.0'), NOT_SET, 'an int key never matches a JSON object key')
  t.equal(getFromDict(values, 'a.missing'), NOT_SET)
  t.equal(getFromDict(values, 'a.b[5]'), NOT_SET)
})

t.test('apply_values', async (t) => {
  const values = { image: 'repo/x:1', args: ['--a'], count: 3, flag: true, none: null, obj: { k: "it's" } }
  t.same(applyValues({
    image: '{{ image }}',
    args: '{{ args }}',
    count: '{{count}}',
    none: '{{ none }}',
    missing: '{{ missing }}',
    list: ['keep', '{{ missing }}', '{{ image }}'],
    mixed: '{{ image }} {{ flag }} {{ none }} {{ obj }} {{ missing }}!',
    literal: 5,
    blocks: '{{ prefect.blocks.secret.db-password }}',
    dollars: '{{ image }} costs $1'
  }, values), {
    image: 'repo/x:1',
    args: ['--a'],
    count: 3,
    none: null,
    list: ['keep', 'repo/x:1'],
    mixed: 'repo/x:1 True None {\'k\': "it\'s"} !',
    literal: 5,
    blocks: '{{ prefect.blocks.secret.db-password }}',
    dollars: 'repo/x:1 costs $1'
  })
  t.equal(applyValues('{{ missing }}', values), NOT_SET)
})

t.test('{{ $NAME }} never reads pushpool\'s environment', async (t) => {
  process.env.PUSHPOOL_TEMPLATING_TEST_SECRET = 'do-not-leak'
  t.teardown(() => { delete process.env.PUSHPOOL_TEMPLATING_TEST_SECRET })
  const seen: string[] = []
  const rendered = applyValues({ a: '{{ $PUSHPOOL_TEMPLATING_TEST_SECRET }}', b: 'x={{ $PUSHPOOL_TEMPLATING_TEST_SECRET }}' }, {}, { onEnvironmentPlaceholder: name => seen.push(name) })
  t.same(rendered, { a: '', b: 'x=' })
  t.same(seen, ['PUSHPOOL_TEMPLATING_TEST_SECRET', 'PUSHPOOL_TEMPLATING_TEST_SECRET'])
})

t.test('block references by id and by slug', async (t) => {
  t.same(await resolveBlockDocumentReferences({
    credentials: { $ref: { block_document_id: 'b-creds' } },
    whole: '{{ prefect.blocks.secret.db-password }}',
    inline: 'pw={{ prefect.blocks.secret.db-password }} region={{ prefect.blocks.json.settings.region }}',
    path: '{{ prefect.blocks.json.settings.value.sizes[1] }}',
    unwrapped: '{{ prefect.blocks.json.settings }}',
    data: '{{ prefect.blocks.gcp-credentials.prod.project }}',
    untouched: '{{ other }} {{ prefect.variables.v }}',
    emptyRef: { $ref: { block_document_id: '' } }
  }, lookups(), 'job_configuration'), {
    credentials: { project: 'acme', service_account_info: { type: 'service_account' } },
    whole: 's3cr3t',
    inline: 'pw=s3cr3t region=europe-west1',
    path: 'l',
    unwrapped: { region: 'europe-west1', sizes: ['s', 'l'] },
    data: 'acme',
    untouched: '{{ other }} {{ prefect.variables.v }}',
    emptyRef: { $ref: { block_document_id: '' } }
  })
})

t.test('block references that cannot be followed are TemplateErrors naming the field and the fix', async (t) => {
  await t.rejects(resolveBlockDocumentReferences({ credentials: { $ref: { block_document_id: 'gone' } } }, lookups(), 'job_configuration'), {
    name: 'TemplateError',
    field: 'job_configuration.credentials',
    message: /^job_configuration\.credentials refers to block document gone, which does not exist; pick an existing block for it in the deployment's or flow run's job_variables, or in the work pool's base job template\.$/
  })
  await t.rejects(resolveBlockDocumentReferences({ job_body: { image: '{{ prefect.blocks.string.missing }}' } }, lookups(), 'job_configuration'), {
    name: 'TemplateError',
    field: 'job_configuration.job_body.image',
    message: /^job_configuration\.job_body\.image refers to block 'missing' of type 'string', which does not exist; create that block, or fix \{\{ prefect\.blocks\.string\.missing \}\} in/
  })
  const refused: PrefectLookups = { ...lookups(), readBlockDocumentByName: async () => { throw new Error('Prefect API answered 403') } }
  await t.rejects(resolveBlockDocumentReferences({ x: '{{ prefect.blocks.secret.db-password }}' }, refused, 'job_configuration'),
    { name: 'TemplateError', field: 'job_configuration.x', message: /which could not be read \(Prefect API answered 403\); create that block/ })
  await t.rejects(resolveBlockDocumentReferences({ x: 'a{{ prefect.blocks.json.settings }}' }, lookups(), 'job_configuration'),
    { constructor: TemplateError, message: /resolves to an object/ })
  await t.rejects(resolveBlockDocumentReferences({ x: '{{ prefect.blocks.json.settings.value.nope }}' }, lookups(), 'job_configuration'),
    { constructor: TemplateError, message: /has nothing at 'value.nope'/ })
  await t.rejects(resolveBlockDocumentReferences({ x: '{{ prefect.blocks.json }}' }, lookups(), 'job_configuration'),
    { constructor: TemplateError, message: /malformed/ })
  await t.rejects(resolveBlockDocumentReferences({ x: { $ref: 'b-creds' } }, lookups(), 'job_configuration'),
    { name: 'TemplateError', field: 'job_configuration.x' })
})

t.test('an outage while reading a block stays retryable', async (t) => {
  const down: PrefectLookups = { ...lookups(), readBlockDocument: async () => { throw new RetryLater('Prefect API unavailable') } }
  await t.rejects(resolveBlockDocumentReferences({ c: { $ref: { block_document_id: 'b-creds' } } }, down, 'job_configuration'), { name: 'RetryLater' })
})

t.test('block errors never quote the block\'s data', async (t) => {
  const error = await resolveBlockDocumentReferences({ x: 'a{{ prefect.blocks.gcp-credentials.prod }}' }, lookups(), 'job_configuration').catch((e: unknown) => e)
  t.type(error, TemplateError)
  t.notMatch((error as Error).message, /service_account/)
})

t.test('Prefect variables', async (t) => {
  t.same(await resolveVariables({
    whole: '{{ prefect.variables.retries }}',
    inline: 'tag={{ prefect.variables.tag }} flags={{ prefect.variables.flags }}',
    missing: '{{ prefect.variables.nope }}',
    inlineMissing: 'x{{ prefect.variables.nope }}y',
    list: ['{{ prefect.variables.flags }}'],
    nullValue: '{{ prefect.variables.nothing }}'
  }, lookups({ retries: 3, tag: '1.2', flags: { debug: true }, nothing: null }), 'job_configuration'), {
    whole: 3,
    inline: 'tag=1.2 flags={\'debug\': True}',
    missing: '',
    inlineMissing: 'xy',
    list: [{ debug: true }],
    nullValue: null
  })
})
