import t from 'tap'
import { pythonStr, pythonTruthy } from '../../src/jobconfig/python.ts'
import { wholeFloat } from '../../src/prefect/exact-json.ts'

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

t.test('str() of the numbers JSON.parse would round: big ints all digits, whole floats with ".0"', async (t) => {
  t.equal(pythonStr(12345678901234567890n), '12345678901234567890')
  t.equal(pythonStr(-98765432109876543210n), '-98765432109876543210')
  t.equal(pythonStr(wholeFloat(1)), '1.0')
  t.equal(pythonStr(wholeFloat(-0)), '-0.0')
  t.equal(pythonStr(wholeFloat(1e15)), '1000000000000000.0')
  t.equal(pythonStr(wholeFloat(1e16)), '1e+16')
  t.equal(pythonStr(wholeFloat(1.2345678901234568e+29)), '1.2345678901234568e+29')
  t.equal(pythonStr({ n: 2n ** 70n, f: [wholeFloat(2), 2.5] }), "{'n': 1180591620717411303424, 'f': [2.0, 2.5]}")
})

t.test('truthiness', async (t) => {
  for (const value of ['', 0, null, undefined, false, [], {}]) t.notOk(pythonTruthy(value), JSON.stringify(value))
  for (const value of ['x', 1, true, [0], { a: null }]) t.ok(pythonTruthy(value), JSON.stringify(value))
  t.notOk(pythonTruthy(wholeFloat(0)), '0.0')
  t.notOk(pythonTruthy(0n), 'a zero bigint')
  t.ok(pythonTruthy(wholeFloat(1)), '1.0')
  t.ok(pythonTruthy(2n ** 64n), 'a big int')
})
