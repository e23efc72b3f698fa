/**
 * peer-identities.ts: the allowed set of the agent's data-plane endpoints (a
 * node only with the key its record holds, never once Removed) and the page
 * server's `--peers` file it renders; page-server-peers.ts's key hash of a
 * certificate equals the identity join records for the CSR's key.
 */
import t from 'tap';
import { certificateKeyHash } from '../../../services/agent/page-server-peers.ts';
import { PeerIdentities } from '../../../services/agent/peer-identities.ts';
import {
  createClusterCa,
  createKeyAndCsr,
  signCsr,
  verifyCsr,
} from '../../../services/pki/index.ts';

const KA = `sha256:${'a'.repeat(64)}`;
const KB = `sha256:${'b'.repeat(64)}`;

t.test('a node is allowed only with its recorded key, and not once removed', async (t) => {
  const peers = new PeerIdentities();
  peers.replace([
    { name: 'a', state: 'Ready', identity: KA },
    { name: 'b', state: 'NotReady', identity: KB },
    { name: 'c', state: 'Removed', identity: KA },
    { name: 'd', state: 'Ready', identity: 'sha256:nothex' },
  ]);
  t.ok(peers.allows('node:a', KA));
  t.ok(peers.allows('node:b', KB), 'NotReady is still a member');
  t.notOk(peers.allows('node:a', KB), "another node's key");
  t.notOk(peers.allows('node:c', KA), 'removed');
  t.notOk(peers.allows('node:d', 'sha256:nothex'), 'malformed identity');
  t.notOk(peers.allows('a', KA), 'not a node CN');
  t.notOk(peers.allows('admin', KA), 'the admin is not a node');
  t.equal(
    peers.render(),
    `# pageserver --peers: written by clusteragent from the control plane; do not edit\nnode:a ${KA}\nnode:b ${KB}\n`,
  );
  peers.replace([{ name: 'b', state: 'Ready', identity: KB }]);
  t.notOk(peers.allows('node:a', KA), 'a node no longer listed is revoked');
  t.equal(peers.size, 1);
});

t.test("a certificate's key hash is the identity join records", async (t) => {
  const ca = await createClusterCa();
  const { keyPem: _key, csrPem } = await createKeyAndCsr({ commonName: 'node:a' });
  const cert = await signCsr(ca, csrPem, {
    commonName: 'node:a',
    organization: 'amalgam:nodes',
    usages: ['client', 'server'],
    validityDays: 1,
  });
  const { publicKeyHash } = await verifyCsr(csrPem);
  t.equal(certificateKeyHash(cert), publicKeyHash);
  t.match(publicKeyHash, /^sha256:[0-9a-f]{64}$/);
});
