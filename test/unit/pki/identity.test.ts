import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import t from 'tap';
import {
  adminSubject,
  caCertHash,
  createClusterCa,
  identityOf,
  isClusterdCertificate,
  issueAdminCredential,
  nodeSubject,
  userSubject,
} from '../../../services/pki/index.ts';

/** What `getPeerCertificate()` reports, reduced to the subject (arrays for repeated attributes). */
function peer(subject: Record<string, string | string[]>): Pick<PeerCertificate, 'subject'> {
  return { subject: subject as unknown as PeerCertificate['subject'] };
}

t.test('node and admin subjects are recognised', async (t) => {
  t.same(identityOf(peer({ CN: 'node:worker-1', O: 'amalgam:nodes' })), {
    kind: 'node',
    name: 'worker-1',
  });
  t.same(identityOf(peer({ CN: 'admin', O: 'amalgam:admins' })), { kind: 'admin' });
  const { commonName, organization } = nodeSubject('worker-2');
  t.same(identityOf(peer({ CN: commonName, O: organization })), {
    kind: 'node',
    name: 'worker-2',
  });
  const admin = adminSubject();
  t.same(identityOf(peer({ CN: admin.commonName, O: admin.organization })), { kind: 'admin' });
});

t.test('anything else is no identity', async (t) => {
  const cases: [string, Record<string, string | string[]>][] = [
    ['admin CN in the nodes organisation', { CN: 'admin', O: 'amalgam:nodes' }],
    ['node CN in the admins organisation', { CN: 'node:a', O: 'amalgam:admins' }],
    ['no organisation', { CN: 'node:a' }],
    ['no common name', { O: 'amalgam:nodes' }],
    ['empty node name', { CN: 'node:', O: 'amalgam:nodes' }],
    ['invalid node name', { CN: 'node:Bad_Name', O: 'amalgam:nodes' }],
    ['dotted node name', { CN: 'node:rack2.worker-1', O: 'amalgam:nodes' }],
    ['node name too long', { CN: `node:${'a'.repeat(64)}`, O: 'amalgam:nodes' }],
    ['no node: prefix', { CN: 'worker-1', O: 'amalgam:nodes' }],
    ['two organisations', { CN: 'admin', O: ['amalgam:admins', 'amalgam:nodes'] }],
    ['two common names', { CN: ['node:a', 'admin'], O: 'amalgam:nodes' }],
    ['other organisation', { CN: 'admin', O: 'example' }],
  ];
  for (const [what, subject] of cases) t.equal(identityOf(peer(subject)), undefined, what);
  t.equal(identityOf({} as PeerCertificate), undefined, 'no certificate ({})');
  t.equal(identityOf(undefined), undefined);
  t.equal(identityOf(null), undefined);
});

t.test('nodeSubject takes only valid node names (the core rule)', async (t) => {
  t.same(nodeSubject('a'.repeat(63)), {
    commonName: `node:${'a'.repeat(63)}`,
    organization: 'amalgam:nodes',
  });
  for (const bad of ['', 'Node-1', 'a.b', 'a_b', 'node:a', 'a'.repeat(64)]) {
    t.throws(() => nodeSubject(bad), { code: 'INVALID_ARGUMENT' }, JSON.stringify(bad));
  }
});

t.test(
  'user certificates: CN user:<name>, O the role group; keyHash from the public key',
  async (t) => {
    t.same(identityOf(peer({ CN: 'user:alice', O: 'amalgam:viewers' })), {
      kind: 'user',
      name: 'alice',
      role: 'viewer',
    });
    t.same(identityOf(peer({ CN: 'user:bob', O: 'amalgam:operators' })), {
      kind: 'user',
      name: 'bob',
      role: 'operator',
    });
    t.same(identityOf(peer({ CN: 'user:ada', O: 'amalgam:admins' })), {
      kind: 'user',
      name: 'ada',
      role: 'admin',
    });
    const subject = userSubject('carol', 'operator');
    t.same(subject, { commonName: 'user:carol', organization: 'amalgam:operators' });
    t.equal(identityOf(peer({ CN: 'user:Bad_Name', O: 'amalgam:viewers' })), undefined);
    t.equal(identityOf(peer({ CN: 'user:alice', O: 'amalgam:nodes' })), undefined);
    t.equal(identityOf(peer({ CN: 'node:alice', O: 'amalgam:viewers' })), undefined);
    t.equal(identityOf(peer({ CN: 'clusterd', O: 'amalgam:control-plane' })), undefined);

    const ca = await createClusterCa();
    const admin = await issueAdminCredential(ca);
    const der = new X509Certificate(admin.certPem).raw;
    const withKey = identityOf({
      subject: { CN: 'node:n1', O: 'amalgam:nodes' } as PeerCertificate['subject'],
      raw: der,
    });
    t.equal(withKey?.keyHash, caCertHash(admin.certPem), 'the SPKI hash, as records hold it');
  },
);

t.test("clusterd's subject is the only one isClusterdCertificate takes", async (t) => {
  t.ok(isClusterdCertificate(peer({ CN: 'clusterd', O: 'amalgam:control-plane' })));
  t.notOk(isClusterdCertificate(peer({ CN: 'clusterd', O: 'amalgam:nodes' })));
  t.notOk(isClusterdCertificate(peer({ CN: 'node:localhost', O: 'amalgam:nodes' })));
  t.notOk(isClusterdCertificate(peer({ CN: 'clusterd' })));
});
