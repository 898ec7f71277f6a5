import t from 'tap'
import { pythonStr, pythonTruthy } from '../../src/jobconfig/python.ts'

t.test('str() of JSON values, as recorded from Python', async (t) => {
  t.equal(pythonStr('text'), 'text')
  t.equal(pythonStr(true), 'True')
  t.equal(pythonStr(null), 'None')
  t.equal(pythonStr(7), '7')
  t.equal(pythonStr(1e16), '1e+16')
  t.equal(pythonStr(1.5e-5), '1.5e-05')
  t.equal(pythonStr(1e-7), '1e-07')
  t.equal(pythonStr(0.0001), '0.0001')
  t.equal(pythonStr(123.456), '123.456')
  t.equal(pythonStr(1.5e300), '1.5e+300')
  t.equal(pythonStr(-0.5), '-0.5')
  t.equal(pythonStr({ a: "it's", b: 'say "hi"', c: 'both \' and "', d: '\x07\u200b\n', e: [true, null, {}] }),
    '{\'a\': "it\'s", \'b\': \'say "hi"\', \'c\': \'both \\\' and "\', \'d\': \'\\x07\\u200b\\n\', \'e\': [True, None, {}]}')
})

t.test('truthiness', async (t) => {
  for (const value of ['', 0, null, undefined, false, [], {}]) t.notOk(pythonTruthy(value), JSON.stringify(value))
  for (const value of ['x', 1, true, [0], { a: null }]) t.ok(pythonTruthy(value), JSON.stringify(value))
})
