/**
 * Runs the C unit tests of the device table, the device request decoder and
 * the remotedev tree parser (native/test/devices_test.c) through
 * `make -C native test`. Opens no socket; files only in a temp directory.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const NATIVE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native');

t.test('C unit tests of the device table and the remotedev tree pass', async (t) => {
  const r = spawnSync('make', ['-C', NATIVE, 'test'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /devices_test: ok/);
  t.match(r.stdout, /peers_test: ok/, 'the --peers table and the key hash');
  t.match(r.stdout, /route_test: ok/, "netmem's route spec names the owner");
});
