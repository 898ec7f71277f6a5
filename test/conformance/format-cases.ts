// JSON Schema `format` checks as Prefect's server makes them on a work pool's variable defaults:
// each value is judged by the format checker Prefect's schema validator uses (render.py
// --formats) and by pushpool (src/jobconfig/json-schema-formats.ts), and the verdicts must agree.

export interface FormatCase {
  format: string
  values: string[]
}

export const FORMAT_CASES: FormatCase[] = [
  { format: 'email', values: ['ann@example.com', 'ann', '@', ''] },
  { format: 'idn-email', values: ['ånn@exämple.com', 'ånn'] },
  { format: 'ipv4', values: ['192.168.0.1', '0.0.0.0', '255.255.255.255', '256.1.1.1', '192.168.000.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', '١.٢.٣.٤', '1.2.3.4\n', ' 1.2.3.4', '1.2.3.4/32', '1..3.4', ''] },
  {
    format: 'ipv6',
    values: ['::1', '::', '1::', '1:2:3:4:5:6:7:8', 'FE80::A', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', '::ffff:192.168.0.1', '::ffff:192.168.00.1',
      ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '::1:2:3:4:5:6:7', '1:2:3:4:5:6:7::', '1:2:3:4:5:6::7:8', '12345::', 'g::1', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4',
      '::1\n', '1:2', '', '::1/128', '1:2:3:4::5:6:7:8']
  },
  { format: 'date', values: ['2024-02-29', '2023-02-29', '2024-13-01', '2024-04-31', '0000-01-01', '0001-01-01', '2024-1-01', '2024-01-01\n', '２０２４-01-01', '2024-01-01T00:00:00Z', ''] },
  {
    format: 'date-time',
    values: ['2024-05-01T12:00:00Z', '2024-05-01t12:00:00z', '2024-05-01T12:00:00Z\n', '2024-05-01T24:00:00Z', '2024-05-01T12:00:60Z', '2024-02-30T00:00:00Z',
      '2024-02-29T00:00:00Z', '2023-02-29T00:00:00Z', '2024-05-01T12:00:00.123456+05:30', '2024-05-01T12:00:00', '2024-05-01 12:00:00Z', '0000-01-01T00:00:00Z',
      '2024-05-01T12:00:00+24:00', '2024-00-01T00:00:00Z', '2024-05-01T12:00:00.Z']
  },
  { format: 'time', values: ['12:00:00Z', '12:00:00', '12:00:00+01:00', '25:00:00Z', '12:00:00z', '12:00:00.5-03:00', '12:00'] },
  { format: 'regex', values: ['^a$', '[', '(?P<x>a)', '(?<x>a)', 'a{,2}', '\\d+$', '(?i)abc', 'a(?i)b'] },
  {
    format: 'uuid',
    values: ['7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b', '7F0C2B1E-4D5A-4E6F-8A9B-0C1D2E3F4A5B', '7f0c2b1e4d5a4e6f8a9b0c1d2e3f4a5b', '{7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b}',
      'urn:uuid:7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b', '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5', '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5bb', '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b}',
      '0x0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b', '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f_a5b', 'gf0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b', '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3-f4a5b',
      '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5٣', '+f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b', '7f0c2b1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b\n']
  },
  { format: 'json-pointer', values: ['', '/', '/a/b', 'a', '/~0~1', '/~2', '/a~', '/a\n', '/~\n', '#/a'] },
  { format: 'relative-json-pointer', values: ['0', '0#', '1/a', '01', '', '#', '0/~2', '10/a', '²', '1#x', '-1', '٣/a', '1٠'] },
  {
    format: 'idn-hostname',
    values: ['example.com', 'Example.COM', 'exämple.com', 'EXÄMPLE.com', 'xn--exmple-cua.com', 'XN--EXMPLE-CUA.com', 'xn--exmple-cub.com', 'xn---bbk.com', 'xn--.com',
      'xn--a-.com', 'a..b', '', '.', 'a.', 'a.b.', '-a.com', 'a-.com', 'ab--c.com', 'a_b.com', 'a b.com', 'مثال.إختبار', 'مثال1.com', 'a\u200db', 'क\u094d\u200dष',
      'a·l', 'l·l', 'ⅻ.com', '😀.com', 'ﬁ.com', 'e\u0301.com', '\u0301e.com', 'α͵β', 'ל׳', 'a・b', 'ア・イ', '٠١٢', '٠۱', 'x'.repeat(63) + '.com', 'x'.repeat(64) + '.com',
      `${'x'.repeat(60)}.`.repeat(4) + 'x', 'ü'.repeat(60) + '.de', 'a。b．c｡d', 'ᄀ.com', 'ǅ.com']
  },
  // Formats Prefect's server does not check: every value passes.
  { format: 'uri', values: ['not a uri', 'https://example.com'] },
  { format: 'hostname', values: ['-bad-', 'example.com'] },
  { format: 'duration', values: ['P1D', 'nonsense'] },
  { format: 'uri-reference', values: ['%%%'] },
  { format: 'no-such-format', values: ['anything'] }
]
