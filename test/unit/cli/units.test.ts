import { InvalidArgumentError } from 'commander';
import t from 'tap';
import {
  formatAge,
  formatBytes,
  formatExpiry,
  formatRange,
  parseDuration,
  parseSize,
} from '../../../services/cli/units.ts';

t.test('sizes: binary and decimal units, bytes by default', async (t) => {
  t.equal(parseSize('4096'), 4096);
  t.equal(parseSize('64Mi'), 64 * 2 ** 20);
  t.equal(parseSize('1Gi'), 2 ** 30);
  t.equal(parseSize('1.5Gi'), 1.5 * 2 ** 30);
  t.equal(parseSize('2Ti'), 2 * 2 ** 40);
  t.equal(parseSize('1Pi'), 2 ** 50);
  t.equal(parseSize('4Ki'), 4096);
  t.equal(parseSize('500M'), 500e6);
  t.equal(parseSize('1k'), 1000);
  t.equal(parseSize('1K'), 1000);
  t.equal(parseSize('64MiB'), 64 * 2 ** 20, 'a trailing B is allowed');
  t.equal(parseSize(' 8Mi '), 8 * 2 ** 20);
  t.equal(parseSize('0'), 0);
});

t.test('sizes that are not sizes are usage errors', async (t) => {
  for (const bad of [
    '',
    'Mi',
    '-1',
    '1.5',
    '0.3Ki',
    '12X',
    '1mi',
    '1ki',
    '1 Gi B',
    '1e3',
    '64Mib',
    '9Pi0',
  ]) {
    t.throws(() => parseSize(bad), InvalidArgumentError, JSON.stringify(bad));
  }
  t.throws(() => parseSize('8Pi'), InvalidArgumentError, 'beyond 2^53 bytes');
});

t.test('durations: seconds by default, s m h d, and sums', async (t) => {
  t.equal(parseDuration('90'), 90);
  t.equal(parseDuration('90s'), 90);
  t.equal(parseDuration('15m'), 900);
  t.equal(parseDuration('24h'), 86400);
  t.equal(parseDuration('7d'), 7 * 86400);
  t.equal(parseDuration('1h30m'), 5400);
  t.equal(parseDuration('1d2h3m4s'), 86400 + 7200 + 180 + 4);
});

t.test('durations that are not durations are usage errors', async (t) => {
  for (const bad of ['', '0', '0s', 'h', '1.5h', '-1h', '1w', '1 h', '24H', 'forever']) {
    t.throws(() => parseDuration(bad), InvalidArgumentError, JSON.stringify(bad));
  }
});

t.test('bytes print in the largest binary unit', async (t) => {
  t.equal(formatBytes(0), '0');
  t.equal(formatBytes(512), '512');
  t.equal(formatBytes(1024), '1Ki');
  t.equal(formatBytes(64 * 2 ** 20), '64Mi');
  t.equal(formatBytes(1.5 * 2 ** 30), '1.5Gi');
  t.equal(formatBytes(2 ** 50), '1Pi');
  t.equal(formatBytes(2 ** 30 + 1), '1Gi', 'rounded to one decimal');
  // What the CLI prints, it reads back.
  for (const bytes of [4096, 64 * 2 ** 20, 1.5 * 2 ** 30, 3 * 2 ** 40]) {
    t.equal(parseSize(formatBytes(bytes)), bytes);
  }
});

t.test('ranges, ages and expiries', async (t) => {
  t.equal(formatRange({ start: 0x200000, size: 0x40000000 }), '0x200000-0x40200000');
  const now = Date.parse('2026-01-02T00:00:00Z');
  t.equal(formatAge('2026-01-01T23:59:15Z', now), '45s');
  t.equal(formatAge('2026-01-01T23:50:00Z', now), '10m');
  t.equal(formatAge('2026-01-01T19:00:00Z', now), '5h');
  t.equal(formatAge('2025-12-29T00:00:00Z', now), '4d');
  t.equal(formatAge('not a date', now), '-');
  t.equal(formatExpiry('2026-01-03T00:00:00Z', now), 'in 24h');
  t.equal(formatExpiry('2026-01-01T00:00:00Z', now), 'expired');
});
