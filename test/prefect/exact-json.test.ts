// Reading Prefect's documents with Python's numbers (src/prefect/exact-json.ts).
import t from 'tap'
import { isWholeFloat, parseExactJson, stringifyExactJson, toPlainJson, wholeFloat, withExactFields } from '../../src/prefect/exact-json.ts'

t.test('integers beyond 2^53 become bigints and whole floats boxed Numbers; every other number is JSON.parse\'s', async t => {
  const value = parseExactJson('{"big": 12345678901234567890, "safe": 9007199254740991, "unsafe": -9007199254740993, "whole": 1.0, "exp": 1E5, "zero": -0.0, "int_zero": -0, "fraction": 0.25, "huge": 1e400, "text": "1.0"}') as Record<string, unknown>
  t.equal(value.big, 12345678901234567890n)
  t.equal(value.safe, 9007199254740991)
  t.equal(value.unsafe, -9007199254740993n)
  t.ok(isWholeFloat(value.whole) && value.whole.valueOf() === 1)
  t.ok(isWholeFloat(value.exp) && value.exp.valueOf() === 100000)
  t.ok(isWholeFloat(value.zero) && Object.is(value.zero.valueOf(), -0))
  t.equal(value.int_zero, -0, 'an integer -0 is Python\'s int 0')
  t.equal(value.fraction, 0.25)
  t.equal(value.huge, Infinity, 'Python reads 1e400 as inf too')
  t.equal(value.text, '1.0')
  t.same(structuredClone(value), value, 'both representations survive structuredClone')
})

t.test('written back, they are the JSON text Python would write', async t => {
  t.equal(stringifyExactJson({ a: 12345678901234567890n, b: [wholeFloat(1), wholeFloat(-0), wholeFloat(2.5e20), 0.5, 3], c: 'x' }),
    '{"a":12345678901234567890,"b":[1.0,-0.0,2.5e+20,0.5,3],"c":"x"}')
  t.equal(stringifyExactJson(wholeFloat(7)), '7.0')
  const text = '{"n":[340282366920938463463374607431768211456,100000.0,-1.5]}'
  t.equal(stringifyExactJson(parseExactJson(text)), text, 'a round trip keeps every digit')
})

t.test('plain JSON for the fields nothing renders', async t => {
  t.same(toPlainJson({ a: [2n ** 64n, wholeFloat(3)], b: { c: wholeFloat(0.0) } }), { a: [18446744073709552000, 3], b: { c: 0 } })
  const run = withExactFields<Record<string, any>>(parseExactJson('{"run_count": 1.0, "job_variables": {"x": 1.0}, "parameters": {"n": 12345678901234567890}}'), ['job_variables', 'parameters'])
  t.equal(run.run_count, 1)
  t.ok(isWholeFloat(run.job_variables.x))
  t.equal(run.parameters.n, 12345678901234567890n)
})
