// Python's re for JSON Schema patterns (src/jobconfig/python-regex.ts). The conformance run
// compares ~100 patterns with Python itself (test/conformance/pattern-cases.ts); these pin the
// contract the validator relies on.
import t from 'tap'
import { isPythonRegex, pythonRegExp } from '../../src/jobconfig/python-regex.ts'
import { renderJobConfiguration } from '../../src/jobconfig/render.ts'
import { TemplateError } from '../../src/failures.ts'
import type { BaseJobTemplate } from '../../src/prefect/types.ts'
import { loadTemplate } from '../conformance/fixtures.ts'
import { deploymentlessRequest } from './render-request.ts'

t.test('Python\'s $ also matches before a final newline; \\Z only at the very end', async t => {
  t.ok(pythonRegExp('^\\d+Mi$').test('512Mi\n'))
  t.notOk(pythonRegExp('^\\d+Mi$').test('512Mi\n\n'))
  t.notOk(pythonRegExp('^\\d+Mi\\Z').test('512Mi\n'))
})

t.test('a pattern re.compile refuses throws PythonRegexError; a valid one is never refused', async t => {
  t.throws(() => pythonRegExp('(?<name>x)'), { name: 'PythonRegexError', message: 'unknown extension ?<n' })
  t.throws(() => pythonRegExp('a**'), { name: 'PythonRegexError', message: 'multiple repeat' })
  t.notOk(isPythonRegex('(?<=a+)b'), 'a variable-width look-behind')
  t.ok(isPythonRegex('(?P<name>x)(?P=name)'))
})

t.test('a conditional group is valid Python that no JavaScript RegExp expresses', async t => {
  t.ok(isPythonRegex('(a)?(?(1)b|c)'))
  t.throws(() => pythonRegExp('(a)?(?(1)b|c)'), { name: 'UntranslatableRegexError' })
})

t.test('a schema pattern pushpool cannot evaluate is refused with a message naming it and the fix', async t => {
  const template = loadTemplate('cloud-run-v2.default') as BaseJobTemplate & { variables: { properties: Record<string, unknown> } }
  template.variables.properties.team = { type: 'string', pattern: '^(a)?(?(1)b|c)$' }
  await t.rejects(renderJobConfiguration(deploymentlessRequest(template, { team: 'ab' })), new TemplateError('variables', 'The work pool\'s variables schema has a pattern using a conditional group (?(…)…|…), which pushpool cannot evaluate; rewrite that pattern in the base job template\'s "variables" section.'))
})
