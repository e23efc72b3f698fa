/**
 * `clusteradm user create|list|revoke` against a real clusterd: the written
 * configuration acts as the user (a viewer reads, and is refused a write),
 * and after `user revoke` the same configuration is refused.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runClusteradm } from '../../services/cli/main.ts';
import { until } from '../harness/until.ts';
import { startCluster } from './cluster-fixture.ts';

async function clusteradm(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runClusteradm(args, {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    env: {},
    userHome: tmpdir(),
    cwd: tmpdir(),
    now: Date.now,
    hostname: () => 'test',
  });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

t.test('user create, list, revoke through clusteradm', async (t) => {
  const cluster = await startCluster(t);
  const home = await mkdtemp(join(tmpdir(), 'amalgam-user-cli-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  await writeFile(join(home, 'ca.crt'), cluster.ca.certPem);
  await writeFile(join(home, 'admin.crt'), cluster.admin.certPem);
  await writeFile(join(home, 'admin.key'), cluster.admin.keyPem, { mode: 0o600 });
  await writeFile(
    join(home, 'admin.json'),
    JSON.stringify({
      server: [cluster.url],
      caFile: 'ca.crt',
      certFile: 'admin.crt',
      keyFile: 'admin.key',
    }),
  );

  const help = await clusteradm(['user', 'create', '--help']);
  t.match(help.stdout, /--role/, '--help names the role');

  const created = await clusteradm([
    'user',
    'create',
    'vera',
    '--role',
    'viewer',
    '--home',
    home,
    '-o',
    'json',
  ]);
  t.equal(created.code, 0, created.stderr);
  const { user, config } = JSON.parse(created.stdout);
  t.match(user, { name: 'vera', role: 'viewer', revoked: false });
  t.equal((await stat(join(home, 'users', 'vera.key'))).mode & 0o777, 0o600, 'the key is private');
  t.match(JSON.parse(await readFile(config, 'utf8')), { server: [cluster.url] });

  const asVera = await clusteradm(['nodes', '--config', config, '-o', 'json']);
  t.equal(asVera.code, 0, `the viewer reads: ${asVera.stderr}`);
  const write = await clusteradm(['token', 'create', '--config', config]);
  t.not(write.code, 0, 'the viewer may not create a token');
  t.match(write.stderr, /FORBIDDEN/);

  const bad = await clusteradm(['user', 'create', 'x', '--role', 'root', '--home', home]);
  t.not(bad.code, 0, 'an unknown role is refused');

  const listed = await clusteradm(['user', 'list', '--home', home]);
  t.match(listed.stdout, /vera\s+viewer\s+active/);

  const revoked = await clusteradm(['user', 'revoke', 'vera', '--home', home]);
  t.equal(revoked.code, 0, revoked.stderr);
  t.match((await clusteradm(['user', 'list', '--home', home])).stdout, /vera\s+viewer\s+revoked/);
  const refused = await until('the revoke reaches the doors', async () => {
    const run = await clusteradm(['nodes', '--config', config]);
    return run.code !== 0 ? run : undefined;
  });
  t.match(refused.stderr, /CREDENTIAL_REVOKED/);
});
