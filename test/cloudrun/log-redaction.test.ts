// The redaction of container lines, case by case (pure: the lines a real container printed are in
// execution-logs.test.ts).
import t from 'tap'
import { lineRedactor } from '../../src/cloudrun/log-redaction.ts'

t.test('known values: the longest first, too short ones left alone', async t => {
  const redact = lineRedactor(['abcdef', 'abcdefghij', 'abc'])
  t.equal(redact('x abcdefghij y abcdef z abc'), 'x [redacted] y [redacted] z abc')
})

t.test('names that say they hold a secret, in env, YAML, JSON and Python forms', async t => {
  const redact = lineRedactor()
  t.equal(redact('GITHUB_TOKEN=ghp_x1 DB_PASSWORD=pw next'), 'GITHUB_TOKEN=[redacted] DB_PASSWORD=[redacted] next')
  t.equal(redact('api_key: k-123, region: eu'), 'api_key: [redacted], region: eu')
  t.equal(redact('{"aws_secret_access_key": "wJalr\\"XUt", "user": "bob"}'), '{"aws_secret_access_key": "[redacted]", "user": "bob"}')
  t.equal(redact("{'password': 'pa ss', 'host': 'h'}"), "{'password': '[redacted]', 'host': 'h'}")
  t.equal(redact('GOOGLE_APPLICATION_CREDENTIALS=/var/key.json'), 'GOOGLE_APPLICATION_CREDENTIALS=[redacted]')
  t.equal(redact('status=ok retries=3 user=bob'), 'status=ok retries=3 user=bob', 'other names are kept')
  t.equal(redact('failed (API_TOKEN=abc123) [SECRET=x]'), 'failed (API_TOKEN=[redacted]) [SECRET=[redacted]]', 'closing brackets are prose')
  t.equal(lineRedactor(['abcdefgh'])('MY_TOKEN=abcdefgh!x'), 'MY_TOKEN=[redacted]', 'a value already partly blanked is blanked whole')
})

t.test('credentials in headers, tokens and URLs', async t => {
  const redact = lineRedactor()
  t.equal(redact('Authorization: Basic dXNlcjpwYXNzd29yZA=='), 'Authorization: Basic [redacted]')
  t.equal(redact('curl -H "authorization: bearer abc.def.ghi-jkl"'), 'curl -H "authorization: bearer [redacted]"')
  t.equal(redact('redis://:topsecret@cache:6379 and https://u:p4ss@host/x'), 'redis://:[redacted]@cache:6379 and https://u:[redacted]@host/x')
  t.equal(redact('bearer of bad news'), 'bearer of bad news', 'a short word after "bearer" is prose')
})

t.test('PEM private keys: on one line, twice, and spread over lines', async t => {
  const redact = lineRedactor()
  t.equal(redact('a -----BEGIN PRIVATE KEY-----\\nAAA\\n-----END PRIVATE KEY----- b -----BEGIN EC PRIVATE KEY-----BBB-----END EC PRIVATE KEY----- c'),
    'a -----BEGIN PRIVATE KEY-----[redacted]-----END PRIVATE KEY----- b -----BEGIN EC PRIVATE KEY-----[redacted]-----END EC PRIVATE KEY----- c')
  t.same(['-----BEGIN OPENSSH PRIVATE KEY-----', 'b3BlbnNzaC1rZXktdjEAAAAA', 'AAAAC3NzaC1lZDI1NTE5', '-----END OPENSSH PRIVATE KEY----- done', 'after']
    .map(redact), ['-----BEGIN OPENSSH PRIVATE KEY-----[redacted]', '[redacted]', '[redacted]', '[redacted]-----END OPENSSH PRIVATE KEY----- done', 'after'])
  t.equal(redact('-----BEGIN CERTIFICATE-----MIIB'), '-----BEGIN CERTIFICATE-----MIIB', 'a certificate is public')
})
