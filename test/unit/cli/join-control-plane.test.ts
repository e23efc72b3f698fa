/** The pure parts of `clusteradm join --control-plane`: etcd's initial cluster and environment. */
import t from 'tap';
import { etcdPaths } from '../../../services/cli/etcd-files.ts';
import {
  controlPlaneSettings,
  etcdEnvironment,
  initialCluster,
  parseEnvironmentFile,
} from '../../../services/cli/join-control-plane.ts';

t.test('initial cluster: the new member under its name, started members by theirs', (t) => {
  const members = [
    { ID: '1', name: 'c0', peerURLs: ['https://10.0.0.10:2380'] },
    { ID: '2', peerURLs: ['https://10.0.0.11:2380'] },
    { ID: '3', name: '', peerURLs: ['https://10.0.0.12:2380'] },
  ];
  t.equal(
    initialCluster(members, 'c1', 'https://10.0.0.11:2380'),
    'c0=https://10.0.0.10:2380,c1=https://10.0.0.11:2380',
    'a member added but never started (no name) is left out',
  );
  t.end();
});

t.test('etcd environment: https only, client and peer certificates required, round-trips', (t) => {
  const pki = etcdPaths('/etc/amalgam');
  const env = etcdEnvironment(
    {
      name: 'c1',
      address: '10.0.0.11',
      dataDir: '/var/lib/etcd',
      cluster: 'c0=https://10.0.0.10:2380',
      state: 'existing',
    },
    pki,
  );
  t.equal(env.ETCD_INITIAL_CLUSTER_STATE, 'existing', 'never a second cluster');
  t.equal(env.ETCD_ADVERTISE_CLIENT_URLS, 'https://10.0.0.11:2379');
  t.equal(env.ETCD_LISTEN_CLIENT_URLS, 'https://10.0.0.11:2379,https://127.0.0.1:2379');
  t.equal(env.ETCD_INITIAL_ADVERTISE_PEER_URLS, 'https://10.0.0.11:2380');
  t.equal(
    env.ETCD_LISTEN_METRICS_URLS,
    'http://10.0.0.11:2381',
    'only metrics and health in clear',
  );
  t.equal(env.ETCD_CLIENT_CERT_AUTH, 'true');
  t.equal(env.ETCD_PEER_CLIENT_CERT_AUTH, 'true');
  t.equal(env.ETCD_TRUSTED_CA_FILE, '/etc/amalgam/pki/etcd/ca.crt');
  t.equal(env.ETCD_PEER_TRUSTED_CA_FILE, '/etc/amalgam/pki/etcd/ca.crt');
  t.equal(env.ETCD_CERT_FILE, '/etc/amalgam/pki/etcd/server.crt');
  t.equal(env.ETCD_PEER_CERT_FILE, '/etc/amalgam/pki/etcd/peer.crt');
  t.notOk(
    Object.values(env).some((v) => /http:\/\/[^,]*:23(79|80)/.test(v)),
    'no plain http client or peer URL',
  );
  const text = `# comment\n${Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;
  t.same(parseEnvironmentFile(text), env);
  t.equal(
    etcdEnvironment(
      { name: 'c1', address: 'fd00::1', dataDir: '/d', cluster: 'x', state: 'new' },
      pki,
    ).ETCD_LISTEN_PEER_URLS,
    'https://[fd00::1]:2380',
  );
  t.end();
});

t.test('--control-plane names each flag it is missing', (t) => {
  const base = { controlPlane: true, listen: { host: '0.0.0.0', port: 6443 }, start: true };
  t.throws(() => controlPlaneSettings(base), /--pki-dir/);
  t.throws(() => controlPlaneSettings({ ...base, pkiDir: '/p' }), /--advertise-address/);
  t.throws(
    () => controlPlaneSettings({ ...base, pkiDir: '/p', advertiseAddress: '10.0.0.1' }),
    /--etcd-endpoints/,
  );
  t.same(
    controlPlaneSettings({
      ...base,
      pkiDir: '/p',
      advertiseAddress: '10.0.0.1',
      etcdEndpoints: ['https://10.0.0.10:2379'],
    }),
    {
      pkiDir: '/p',
      advertiseAddress: '10.0.0.1',
      etcdEndpoints: ['https://10.0.0.10:2379'],
      listen: { host: '0.0.0.0', port: 6443 },
      start: true,
    },
  );
  t.end();
});
