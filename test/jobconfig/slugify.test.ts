// slugify against outputs recorded from python-slugify 9 (the version prefect 3.8.8 installs), with
// the regex_pattern Prefect's Cloud Run job names use.
import t from 'tap'
import { slugify } from '../../src/jobconfig/slugify.ts'

const JOB_NAME = { maxLength: 55, disallowed: /[^a-zA-Z0-9-]+/gu }

const RECORDED: Array<[string, string]> = [
  ['Hello World', 'hello-world'],
  ['café crème', 'cafe-creme'],
  ['Straße nach Łódź', 'strasse-nach-lodz'],
  ['&amp; &lt;tag&gt; &#39;q&#39; &#x41;', 'tag-q-a'],
  ["it's 1,000", 'it-s-1000'],
  ['🚀 launch', 'launch'],
  ['---', ''],
  ['a  --  b', 'a-b'],
  ['ÀÉÎÕÜ', 'aeiou'],
  ['née—dash', 'nee-dash'],
  ['«quoted»', 'quoted'],
  ['A&eacute;B', 'ae-b'],
  ['½ and ²', '1-2-and-2'],
  ['&#99999999; &#65;', '99999999-65'],
  [`${'x'.repeat(60)}-y`, 'x'.repeat(55)],
  ['日本のフロー', 'ri-ben-nohuro'],
  ['flow 日本 run', 'flow-ri-ben-run'],
  ['Ночной отчёт', 'nochnoi-otchet'],
  ['Σύνοψη αποτελεσμάτων', 'sunopse-apotelesmaton'],
  ['₂₀₂₄ ℃ № ™', '2024-degc-no-tm'],
  ['Ḁ‱', 'a-00'],
  ['\u0800x', 'x'],
  ['x\ufdf2y', 'xllhy'],
  ['😀 x 𝔘nicode', 'x-unicode']
]

t.test('slugs flow run names like python-slugify', async (t) => {
  for (const [text, expected] of RECORDED) t.equal(slugify(text, JOB_NAME), expected, text)
})

t.test('keeps case, dots and underscores for image tags', async (t) => {
  const tag = { lowercase: false, maxLength: 128, disallowed: /[^a-zA-Z0-9_.-]+/gu }
  t.equal(slugify('3.8.8-python3.12', tag), '3.8.8-python3.12')
  t.equal(slugify('Ab_C.d e', tag), 'Ab_C.d-e')
})
