/** The pure parts of `clusteradm join --control-plane`: etcd's initial cluster and environment. */
import t from 'tap';
import {
  controlPlaneSettings,
  etcdEnvironment,
  initialCluster,
  parseEnvironmentFile,
} from '../../../services/cli/join-control-plane.ts';

t.test('initial cluster: the new member under its name, started members by theirs', (t) => {
  const members = [
    { ID: '1', name: 'c0', peerURLs: ['http://10.0.0.10:2380'] },
    { ID: '2', peerURLs: ['http://10.0.0.11:2380'] },
    { ID: '3', name: '', peerURLs: ['http://10.0.0.12:2380'] },
  ];
  t.equal(
    initialCluster(members, 'c1', 'http://10.0.0.11:2380'),
    'c0=http://10.0.0.10:2380,c1=http://10.0.0.11:2380',
    'a member added but never started (no name) is left out',
  );
  t.end();
});

t.test('etcd environment: joins an existing cluster, round-trips through the file format', (t) => {
  const env = etcdEnvironment('c1', '10.0.0.11', '/var/lib/etcd', 'c0=http://10.0.0.10:2380');
  t.equal(env.ETCD_INITIAL_CLUSTER_STATE, 'existing', 'never a second cluster');
  t.equal(env.ETCD_ADVERTISE_CLIENT_URLS, 'http://10.0.0.11:2379');
  t.equal(env.ETCD_INITIAL_ADVERTISE_PEER_URLS, 'http://10.0.0.11:2380');
  const text = `# comment\n${Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;
  t.same(parseEnvironmentFile(text), env);
  t.equal(
    etcdEnvironment('c1', 'fd00::1', '/d', 'x').ETCD_LISTEN_PEER_URLS,
    'http://[fd00::1]:2380',
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
      etcdEndpoints: ['http://10.0.0.10:2379'],
    }),
    {
      pkiDir: '/p',
      advertiseAddress: '10.0.0.1',
      etcdEndpoints: ['http://10.0.0.10:2379'],
      listen: { host: '0.0.0.0', port: 6443 },
      start: true,
    },
  );
  t.end();
});
