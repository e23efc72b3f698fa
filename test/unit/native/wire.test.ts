/**
 * Runs the C unit tests of the wire decoder and request executor
 * (native/test/wire_test.c) through `make -C native test`. Opens no socket.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const NATIVE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native');

t.test('C unit tests of the wire protocol pass', async (t) => {
  const r = spawnSync('make', ['-C', NATIVE, 'test'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /wire_test: ok/);
});
