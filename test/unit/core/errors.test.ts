import { readFileSync } from 'node:fs';
import t from 'tap';
import { AmalgamError, ERRORS, isAmalgamError } from '../../../services/core/errors.ts';

t.test('every error code is documented in the README', async (t) => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  for (const code of Object.keys(ERRORS)) {
    t.match(readme, new RegExp(`\\b${code}\\b`), `README documents ${code}`);
  }
});

t.test('AmalgamError carries the catalogue entry', async (t) => {
  const err = new AmalgamError('NO_QUORUM', 'etcd unreachable', { endpoints: 3 });
  t.equal(err.code, 'NO_QUORUM');
  t.equal(err.http, 503);
  t.equal(err.retryable, true);
  t.same(err.details, { endpoints: 3 });
  t.ok(isAmalgamError(err, 'NO_QUORUM'));
  t.notOk(isAmalgamError(err, 'WATCH_COMPACTED'));
  t.notOk(isAmalgamError(new Error('x')));
});
