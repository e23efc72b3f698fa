/**
 * `clusteradm init --no-start`, in process: the home it writes (modes, the
 * certificate chain clusterd serves, configurations clusterd and clusteradm
 * accept), and that an existing cluster is never overwritten without --force.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { serverAltNames } from '../../../services/cli/cluster-home.ts';
import { parseAdminConfig } from '../../../services/cli/config.ts';
import { parseEnvironmentFile } from '../../../services/cli/etcd-member.ts';
import { defaultAdvertiseAddress, parseListen } from '../../../services/cli/init.ts';
import { runClusteradm } from '../../../services/cli/main.ts';
import { parseConfig } from '../../../services/controlplane/config.ts';
import { caCertHash } from '../../../services/pki/index.ts';
import { captureContext } from './cli-context.ts';

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-init-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function init(args: string[]) {
  const { context, out } = captureContext();
  const code = await runClusteradm(['init', '--no-start', ...args], context);
  return { code, ...out };
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;

t.test('init --no-start writes the CA, credentials and configurations', async (t) => {
  const home = join(await tempDir(t), 'home');
  const result = await init([
    '--home',
    home,
    '--name',
    'lab',
    '--listen',
    '0.0.0.0:7443',
    '--advertise-address',
    '10.1.2.3',
    '-o',
    'json',
  ]);
  t.equal(result.code, 0, result.stderr);
  const printed = JSON.parse(result.stdout);
  t.equal(printed.server, 'https://10.1.2.3:7443');

  const pki = join(home, 'pki');
  for (const key of ['ca.key', 'admin.key', 'clusterd.key']) {
    t.equal(await mode(join(pki, key)), 0o600, key);
  }
  t.equal(await mode(pki), 0o700);
  const caPem = await readFile(join(pki, 'ca.crt'), 'utf8');
  t.equal(printed.caCertHash, caCertHash(caPem));

  // clusterd serves its certificate followed by the CA, so joins can read the CA.
  const chain = (await readFile(join(pki, 'clusterd.crt'), 'utf8')).match(
    /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
  );
  t.equal(chain?.length, 2);
  const [leaf, root] = (chain ?? []).map((pem) => new X509Certificate(pem));
  const ca = new X509Certificate(caPem);
  t.equal(root?.fingerprint256, ca.fingerprint256);
  t.ok(leaf?.verify(ca.publicKey), 'the server certificate is signed by the CA');
  for (const name of [
    'DNS:localhost',
    'DNS:test-host',
    'IP Address:127.0.0.1',
    'IP Address:10.1.2.3',
  ]) {
    t.match(leaf?.subjectAltName ?? '', name);
  }

  // clusterd accepts the configuration init wrote.
  const clusterd = parseConfig(
    JSON.parse(await readFile(join(home, 'clusterd.json'), 'utf8')),
    home,
  );
  t.same(clusterd.listen, { host: '0.0.0.0', port: 7443 });
  t.same(clusterd.store, { backend: 'embedded', dataDir: join(home, 'data') });
  t.equal(clusterd.clusterName, 'lab');
  t.equal(clusterd.tls.caKeyFile, join(pki, 'ca.key'));

  const admin = parseAdminConfig(await readFile(join(home, 'admin.json'), 'utf8'), 'admin.json');
  t.same(admin, {
    server: ['https://10.1.2.3:7443'],
    caFile: join(pki, 'ca.crt'),
    certFile: join(pki, 'admin.crt'),
    keyFile: join(pki, 'admin.key'),
  });
});

t.test('etcd: https endpoints, the etcd CA and certificates, the first member', async (t) => {
  const home = join(await tempDir(t), 'home');
  const result = await init([
    '--home',
    home,
    '--advertise-address',
    '10.1.2.3',
    '--store',
    'etcd',
    '--etcd-name',
    'c0',
    '--etcd-endpoints',
    'https://127.0.0.1:2379, https://127.0.0.1:22379',
  ]);
  t.equal(result.code, 0, result.stderr);
  const config = JSON.parse(await readFile(join(home, 'clusterd.json'), 'utf8'));
  const etcd = join(home, 'pki', 'etcd');
  t.same(parseConfig(config, home).store, {
    backend: 'etcd',
    endpoints: ['https://127.0.0.1:2379', 'https://127.0.0.1:22379'],
    tls: {
      ca: join(etcd, 'ca.crt'),
      cert: join(etcd, 'clusterd-client.crt'),
      key: join(etcd, 'clusterd-client.key'),
    },
  });
  // The etcd CA is not the cluster CA: a node certificate must never pass etcd's client check.
  const clusterCa = new X509Certificate(await readFile(join(home, 'pki', 'ca.crt')));
  const etcdCa = new X509Certificate(await readFile(join(etcd, 'ca.crt')));
  t.not(etcdCa.fingerprint256, clusterCa.fingerprint256, 'a separate etcd CA');
  const server = new X509Certificate(await readFile(join(etcd, 'server.crt')));
  t.ok(server.checkIssued(etcdCa), 'the server certificate comes from the etcd CA');
  t.match(server.subjectAltName, /IP Address:10\.1\.2\.3/, 'valid for the advertise address');
  const client = new X509Certificate(await readFile(join(etcd, 'clusterd-client.crt')));
  t.match(client.subject, /CN=clusterd/);
  t.equal((await stat(join(etcd, 'ca.key'))).mode & 0o777, 0o600, 'the etcd CA key is private');
  const env = parseEnvironmentFile(await readFile(join(home, 'etcd.env'), 'utf8'));
  t.equal(env.ETCD_NAME, 'c0');
  t.equal(env.ETCD_INITIAL_CLUSTER, 'c0=https://10.1.2.3:2380');
  t.equal(env.ETCD_INITIAL_CLUSTER_STATE, 'new');
  t.equal(env.ETCD_CLIENT_CERT_AUTH, 'true');
});

t.test('etcd: a plain http endpoint is refused', async (t) => {
  const home = join(await tempDir(t), 'home');
  const result = await init([
    '--home',
    home,
    '--store',
    'etcd',
    '--etcd-endpoints',
    'http://127.0.0.1:2379',
  ]);
  t.not(result.code, 0);
  t.match(result.stderr, /https:\/\/ etcd client URL/);
});

t.test('an existing cluster is kept unless --force', async (t) => {
  const dir = await tempDir(t);
  const home = join(dir, 'home');
  t.equal((await init(['--home', home])).code, 0);
  const firstCa = await readFile(join(home, 'pki', 'ca.crt'), 'utf8');

  const again = await init(['--home', home]);
  t.equal(again.code, 1);
  t.match(again.stderr, /^error: HOME_EXISTS: /m);
  t.equal(await readFile(join(home, 'pki', 'ca.crt'), 'utf8'), firstCa, 'untouched');

  // A running clusterd from that home is never pulled out from under: refuse even with --force.
  await writeFile(join(home, 'clusterd.pid'), `${process.pid}\n`);
  const running = await init(['--home', home, '--force']);
  t.equal(running.code, 1);
  t.match(running.stderr, /^error: CLUSTERD_RUNNING: /m);

  await writeFile(join(home, 'other-file'), 'not init');
  await rm(join(home, 'clusterd.pid'));
  const forced = await init(['--home', home, '--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.not(await readFile(join(home, 'pki', 'ca.crt'), 'utf8'), firstCa, 'a new CA');
  t.equal(await readFile(join(home, 'other-file'), 'utf8'), 'not init', 'only init files go');
});

t.test('listen addresses', async (t) => {
  t.same(parseListen('127.0.0.1:6443'), { host: '127.0.0.1', port: 6443 });
  t.same(parseListen(':6443'), { host: '0.0.0.0', port: 6443 });
  t.same(parseListen('[::1]:6443'), { host: '::1', port: 6443 });
  t.same(parseListen('node1.lan:443'), { host: 'node1.lan', port: 443 });
  for (const bad of ['6443', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '::1:6443']) {
    t.throws(() => parseListen(bad), bad);
  }
});

t.test('advertise address and server certificate names', async (t) => {
  const interfaces = {
    lo: [{ family: 'IPv4', internal: true, address: '127.0.0.1' }],
    eth0: [
      { family: 'IPv6', internal: false, address: 'fe80::1' },
      { family: 'IPv4', internal: false, address: '192.168.1.20' },
    ],
  } as unknown as Parameters<typeof defaultAdvertiseAddress>[1];
  t.equal(defaultAdvertiseAddress('0.0.0.0', interfaces), '192.168.1.20');
  t.equal(defaultAdvertiseAddress('10.0.0.5', interfaces), '10.0.0.5');
  t.equal(defaultAdvertiseAddress('0.0.0.0', {}), '127.0.0.1');

  const names = serverAltNames({
    clusterName: 'c',
    listen: { host: '0.0.0.0', port: 6443 },
    advertiseAddress: '10.0.0.5',
    store: { backend: 'embedded' },
    hostname: 'Box_1',
  });
  t.same(names.dnsNames, ['localhost'], 'a host name that is not a DNS name is left out');
  t.same(names.ipAddresses, ['127.0.0.1', '::1', '10.0.0.5']);
});
