// shlexSplit against outputs recorded from Python's shlex.split (POSIX mode).
import t from 'tap'
import { shlexSplit, ShlexError } from '../../src/jobconfig/shlex.ts'

const RECORDED: Array<[string, string[]]> = [
  ['a b  c', ['a', 'b', 'c']],
  ["'' b", ['', 'b']],
  ['a\\ b', ['a b']],
  ['"a \\" b \\\\ c \\d"', ['a " b \\ c \\d']],
  ["'it'\"'\"'s'", ["it's"]],
  ['x"y z"w', ['xy zw']],
  ['a\tb\nc', ['a', 'b', 'c']],
  ['  ', []],
  ['', []],
  ['a\\\nb', ['a\nb']],
  ['"$HOME" \'$HOME\'', ['$HOME', '$HOME']],
  ['é ü', ['é', 'ü']],
  ['python -c "print(\'hi\')" --flag', ['python', '-c', "print('hi')", '--flag']]
]

t.test('splits like Python\'s shlex.split', async (t) => {
  for (const [text, expected] of RECORDED) t.same(shlexSplit(text), expected, JSON.stringify(text))
})

t.test('refuses what Python refuses, with Python\'s reason', async (t) => {
  t.throws(() => shlexSplit("'oops"), new ShlexError('No closing quotation'))
  t.throws(() => shlexSplit('"oops'), new ShlexError('No closing quotation'))
  t.throws(() => shlexSplit('trailing\\'), new ShlexError('No escaped character'))
})
