/** The etcd CA's certificates: who they name, what they are good for, and who issued them. */
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import {
  createClusterCa,
  createEtcdCa,
  etcdMemberAltNames,
  issueEtcdCredential,
} from '../../../services/pki/index.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

t.test('server and peer certificates name the member and serve and dial', async (t) => {
  const ca = await createEtcdCa();
  const caCert = new X509Certificate(ca.certPem);
  t.match(caCert.subject, /CN=amalgam-etcd-ca/);
  for (const kind of ['server', 'peer'] as const) {
    const c = await issueEtcdCredential(ca, {
      kind,
      commonName: 'c1',
      ...etcdMemberAltNames('10.0.0.11', 'Ctl-1'),
    });
    const cert = new X509Certificate(c.certPem);
    t.ok(cert.checkIssued(caCert) && cert.verify(caCert.publicKey), `${kind}: from the etcd CA`);
    t.match(cert.subjectAltName, /IP Address:10\.0\.0\.11/, `${kind}: the member's address`);
    t.match(cert.subjectAltName, /IP Address:127\.0\.0\.1/, `${kind}: loopback`);
    t.match(cert.subjectAltName, /DNS:ctl-1/, `${kind}: the host name`);
    t.same(cert.keyUsage?.sort(), [SERVER_AUTH, CLIENT_AUTH].sort(), `${kind}: serves and dials`);
  }
});

t.test("clusterd's client certificate is a client certificate only, of the etcd CA", async (t) => {
  const ca = await createEtcdCa();
  const c = await issueEtcdCredential(ca, { kind: 'client', commonName: 'clusterd' });
  const cert = new X509Certificate(c.certPem);
  t.match(cert.subject, /CN=clusterd/);
  t.match(cert.subject, /O=amalgam:etcd/);
  t.same(cert.keyUsage, [CLIENT_AUTH]);
  t.equal(cert.subjectAltName, undefined, 'no name to serve under');
  const clusterCa = new X509Certificate((await createClusterCa()).certPem);
  t.notOk(cert.checkIssued(clusterCa), 'not a certificate of the cluster CA');
});

t.test('a DNS advertise address goes into the DNS names', (t) => {
  t.same(etcdMemberAltNames('etcd-1.example', undefined), {
    dnsNames: ['localhost', 'etcd-1.example'],
    ipAddresses: ['127.0.0.1', '::1'],
  });
  t.end();
});
