import t from 'tap';
import {
  formatBootstrapToken,
  generateBootstrapToken,
  isTokenExpired,
  parseBootstrapToken,
  TOKEN_ALPHABET,
  tokenExpiresAt,
} from '../../../services/core/bootstrap-token.ts';
import { isAmalgamError } from '../../../services/core/errors.ts';

/** mulberry32: a tiny seeded PRNG so every run makes the same choices. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return (x ^ (x >>> 14)) >>> 0;
  };
}

function seededBytes(seed: number): (n: number) => Uint8Array {
  const next = prng(seed);
  return (n) => Uint8Array.from({ length: n }, () => next() & 0xff);
}

/** Hands out the given bytes in order, however many are asked for. */
function scriptedBytes(bytes: number[]): (n: number) => Uint8Array {
  let i = 0;
  return (n) => {
    const out = Uint8Array.from(bytes.slice(i, i + n));
    i += n;
    return out;
  };
}

function failure(
  fn: () => unknown,
): { code: string; details: Record<string, unknown> } | undefined {
  try {
    fn();
  } catch (err) {
    if (isAmalgamError(err)) return { code: err.code, details: err.details };
    throw err;
  }
  return undefined;
}

t.test('parses id.secret', async (t) => {
  t.same(parseBootstrapToken('abc123.0123456789abcdef'), {
    id: 'abc123',
    secret: '0123456789abcdef',
  });
  t.same(parseBootstrapToken('000000.zzzzzzzzzzzzzzzz'), {
    id: '000000',
    secret: 'zzzzzzzzzzzzzzzz',
  });
});

t.test('anything else is TOKEN_MALFORMED without echoing the token', async (t) => {
  const secret = '0123456789abcdef';
  const cases: unknown[] = [
    '',
    '.',
    `abc123${secret}`,
    `abc12.${secret}`,
    `abc1234.${secret}`,
    'abc123.0123456789abcde',
    'abc123.0123456789abcdef0',
    `ABC123.${secret}`,
    'abc123.0123456789ABCDEF',
    `abc-23.${secret}`,
    `abc123..${secret}`,
    `abc123.${secret}.`,
    `abc123:${secret}`,
    ` abc123.${secret}`,
    `abc123.${secret}\n`,
    `abc123.${secret}\u0000`,
    'abc123.0123456789abcdeé',
    'abc123.٠١٢٣٤٥٦٧٨٩abcdef',
    undefined,
    null,
    123456,
    { id: 'abc123', secret },
  ];
  for (const text of cases) {
    const f = failure(() => parseBootstrapToken(text));
    t.same(f, { code: 'TOKEN_MALFORMED', details: { reason: 'malformed' } }, JSON.stringify(text));
    try {
      parseBootstrapToken(text);
    } catch (err) {
      t.notMatch((err as Error).message, secret, 'the message never carries the secret');
    }
  }
});

t.test('generated tokens parse back and depend only on the random bytes', async (t) => {
  const seen = new Set<string>();
  const random = seededBytes(2026);
  for (let i = 0; i < 1000; i++) {
    const token = generateBootstrapToken(random);
    const text = formatBootstrapToken(token);
    t.same(parseBootstrapToken(text), token);
    seen.add(text);
  }
  t.equal(seen.size, 1000, 'no repeats');
  t.same(generateBootstrapToken(seededBytes(9)), generateBootstrapToken(seededBytes(9)));
});

t.test('bytes map to the alphabet without modulo bias', async (t) => {
  // Bytes 252..255 would make a..d more likely; they are skipped, not wrapped.
  const token = generateBootstrapToken(
    scriptedBytes([0, 252, 253, 254, 255, 1, 25, 26, 35, 36, 251, ...new Array(20).fill(45)]),
  );
  t.same(token, { id: 'abz09a', secret: `9${'j'.repeat(15)}` });
  // Feed every byte value 11 times: 11 * 252 accepted bytes make exactly 126
  // tokens, and each of the 36 characters must come up exactly 77 times.
  const random = scriptedBytes(Array.from({ length: 256 * 11 }, (_, i) => i % 256));
  const counts = new Map<string, number>();
  for (let i = 0; i < 126; i++) {
    const { id, secret } = generateBootstrapToken(random);
    for (const c of id + secret) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  t.equal(counts.size, TOKEN_ALPHABET.length);
  t.same([...new Set(counts.values())], [77], 'uniform counts');
});

t.test(
  'a source that returns short reads is drawn from again; a broken one is refused',
  async (t) => {
    const seeded = seededBytes(1);
    const oneAtATime = (n: number) => seeded(Math.min(n, 1));
    t.ok(parseBootstrapToken(formatBootstrapToken(generateBootstrapToken(oneAtATime))));
    t.throws(() => generateBootstrapToken((n) => new Uint8Array(n).fill(255)));
    t.throws(() => generateBootstrapToken(() => new Uint8Array(0)));
  },
);

t.test('expiry: a token is expired from expiresAt on', async (t) => {
  const now = 1_800_000_000_000;
  const expiresAt = tokenExpiresAt(now, 3600);
  t.equal(expiresAt, now + 3_600_000);
  t.equal(isTokenExpired({ expiresAt }, now), false);
  t.equal(isTokenExpired({ expiresAt }, expiresAt - 1), false);
  t.equal(isTokenExpired({ expiresAt }, expiresAt), true);
  t.equal(isTokenExpired({ expiresAt }, expiresAt + 1), true);
  t.equal(isTokenExpired({ expiresAt: Number.NaN }, now), true, 'a broken record fails closed');
  t.equal(isTokenExpired({} as { expiresAt: number }, now), true);
});

t.test('the TTL must be a positive whole number of seconds', async (t) => {
  for (const ttl of [0, -1, 1.5, Number.NaN, '60', null, 2 ** 53]) {
    t.same(
      failure(() => tokenExpiresAt(0, ttl)),
      { code: 'INVALID_ARGUMENT', details: { field: 'ttlSeconds' } },
      String(ttl),
    );
  }
  t.same(failure(() => tokenExpiresAt(1_800_000_000_000, 2 ** 50))?.details, {
    field: 'ttlSeconds',
  });
});
