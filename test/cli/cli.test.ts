// The command line's conventions, through a real `node src/cli.ts`: help on every command on
// stdout with exit 0, errors on stderr, and exit codes 1 (failure), 2 (usage), 78 (configuration)
// whose messages name the variable at fault but never echo its value.
import t from 'tap'
import { runCli } from './run-cli.ts'

t.test('--help on pushpool and on every command', async t => {
  const helps: Array<[string[], RegExp]> = [
    [['--help'], /^Usage: pushpool \[command\]/],
    [['-h'], /^Usage: pushpool \[command\]/],
    [['help'], /^Usage: pushpool \[command\]/],
    [['serve', '--help'], /^Usage: pushpool serve/],
    [['emulator', '--help'], /^Usage: pushpool emulator/],
    [['setup', '--help'], /^Usage: pushpool setup/],
    [['setup', '-h'], /^Usage: pushpool setup/],
    [['help', 'setup'], /^Usage: pushpool setup/],
    [['setup', '--no-such-option', '--help'], /^Usage: pushpool setup/]
  ]
  await Promise.all(helps.map(async ([args, usage]) => {
    const res = await runCli(args)
    t.equal(res.code, 0, `${args.join(' ')}: exit 0`)
    t.match(res.stdout, usage, `${args.join(' ')}: its usage on stdout`)
    t.equal(res.stderr, '', `${args.join(' ')}: nothing on stderr`)
  }))
  const top = await runCli(['--help'])
  for (const command of ['serve', 'setup', 'emulator']) t.match(top.stdout, new RegExp(`^  ${command} `, 'm'), `lists ${command}`)
})

t.test('an unknown command is a usage error', async t => {
  const res = await runCli(['deploy-everything'])
  t.equal(res.code, 2)
  t.match(res.stderr, /unknown command "deploy-everything"/)
  t.equal(res.stdout, '')
})

t.test('serve with a bad environment: exit 78, every bad variable listed, no value echoed', async t => {
  const authString = 'no-colon-in-this-secret-value'
  const adminToken = 'shortAdminTok'
  const res = await runCli(['serve'], { PREFECT_API_AUTH_STRING: authString, PUSHPOOL_ADMIN_TOKENS: adminToken, PORT: 'eighty' })
  t.equal(res.code, 78)
  t.equal(res.stdout, '')
  for (const name of ['PUSHPOOL_WEBHOOK_SECRETS', 'PREFECT_API_AUTH_STRING', 'PUSHPOOL_ADMIN_TOKENS', 'PORT']) {
    t.match(res.stderr, name, `names ${name}`)
  }
  for (const value of [authString, adminToken, 'eighty']) t.notMatch(res.stderr, value, 'does not echo a value')
})

t.test('setup: usage errors exit 2', async t => {
  const env = { PUSHPOOL_WEBHOOK_SECRETS: 'setup-cli-secret-0123456789' }
  const usages: Array<[string[], RegExp]> = [
    [[], /--url is required/],
    [['--url', 'ftp://example.com'], /--url must be an http\(s\) URL/],
    [['--url', 'http://127.0.0.1:8080', '--bogus'], /Unknown option '--bogus'/],
    [['--url', 'http://127.0.0.1:8080', 'extra'], /positional/],
    [['--url', 'http://127.0.0.1:8080', '--pool', 'prefect-pool'], /reserves work pool names/],
    [['--url', 'http://127.0.0.1:8080', '--concurrency-limit', 'many'], /--concurrency-limit must be a whole number/],
    [['--url', 'http://127.0.0.1:8080', '--region', 'Mars 1'], /--region must be a Cloud Run region/],
    [['--url', 'http://127.0.0.1:8080', '--adopt', '--image', 'x:1'], /cannot be combined with --image/],
    [['--url', 'http://127.0.0.1:8080', '--webhook-secret-env', 'not a name'], /--webhook-secret-env must be/],
    [['--url', 'http://127.0.0.1:8080', '--service-account', 'jobs'], /--service-account must be a service account's email/],
    [['--url', 'http://127.0.0.1:8080', '--prefect-auth-string-secret', 'my secret'], /--prefect-auth-string-secret must be a Secret Manager secret/],
    [['--url', 'http://127.0.0.1:8080', '--prefect-api-key-secret', 'key:newest'], /--prefect-api-key-secret must be a Secret Manager secret/],
    [['--url', 'http://127.0.0.1:8080', '--adopt', '--prefect-auth-string-secret', 'auth'], /cannot be combined with --prefect-auth-string-secret/]
  ]
  await Promise.all(usages.map(async ([args, message]) => {
    const res = await runCli(['setup', ...args], env)
    t.equal(res.code, 2, `${args.join(' ')}: exit 2`)
    t.match(res.stderr, message, `${args.join(' ')}: says why`)
    t.equal(res.stdout, '', `${args.join(' ')}: nothing on stdout`)
  }))
})

t.test('setup: configuration errors exit 78 without echoing a secret', async t => {
  const missing = await runCli(['setup', '--url', 'http://127.0.0.1:8080'])
  t.equal(missing.code, 78)
  t.match(missing.stderr, /PUSHPOOL_WEBHOOK_SECRETS is required/)

  const shortSecret = 'tooShortSecret'
  const bad = await runCli(['setup', '--url', 'http://127.0.0.1:8080', '--webhook-secret-env', 'MY_HOOK_SECRET'],
    { MY_HOOK_SECRET: shortSecret, PREFECT_API_URL: 'not a url', PREFECT_API_AUTH_STRING: 'no-colon-secret-value' })
  t.equal(bad.code, 78)
  t.match(bad.stderr, /MY_HOOK_SECRET is invalid/)
  t.match(bad.stderr, /PREFECT_API_URL is invalid/)
  t.match(bad.stderr, /PREFECT_API_AUTH_STRING is invalid/)
  for (const value of [shortSecret, 'not a url', 'no-colon-secret-value']) t.notMatch(bad.stderr, value, 'no value echoed')
})

t.test('setup: an unreachable Prefect is a failure (exit 1) that says what to check', async t => {
  const secret = 'setup-cli-secret-0123456789'
  const res = await runCli(['setup', '--url', 'http://127.0.0.1:8080'],
    { PUSHPOOL_WEBHOOK_SECRETS: secret, PREFECT_API_URL: 'http://127.0.0.1:9/api' })
  t.equal(res.code, 1)
  t.match(res.stderr, /unreachable.*PREFECT_API_URL \(http:\/\/127\.0\.0\.1:9\/api\)/)
  t.match(res.stderr, /\.\.\. Connecting to Prefect/, 'progress is shown on stderr')
  t.equal(res.stdout, '')
  t.notMatch(res.stderr, secret)
})
