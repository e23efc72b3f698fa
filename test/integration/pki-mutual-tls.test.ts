/**
 * End to end with Node's own TLS stack: everything the PKI library produces
 * must load in `tls`, and a server configured the way amalgam's endpoints are
 * (`requestCert`, `rejectUnauthorized`, only the cluster CA trusted) must
 * accept exactly the certificates the cluster CA issued and can still use.
 * Sockets listen on 127.0.0.1, port 0, and are closed by every case.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import {
  createClusterCa,
  createKeyAndCsr,
  identityOf,
  issueAdminCredential,
  nodeSubject,
  type PeerIdentity,
  signCsr,
  verifyCsr,
} from '../../services/pki/index.ts';

interface Credential {
  certPem: string;
  keyPem: string;
}

interface Outcome {
  /** The server emitted `secureConnection`. */
  accepted: boolean;
  /** What `identityOf` made of the client's certificate, on the server. */
  identity?: PeerIdentity | undefined;
  /** The SPKI hash `identityOf` read from the certificate (what records hold). */
  keyHash?: string | undefined;
  /** `tlsSocket.authorizationError` on the server when it refused the client. */
  serverRefusal?: string | undefined;
  /** The code of the error the client saw, if any. */
  clientError?: string | undefined;
  /** What the client read before the connection closed. */
  received: string;
}

/** One connection from `client` to a server presenting `server`; both trust only `caPem`. */
async function handshake(caPem: string, server: Credential, client: Credential): Promise<Outcome> {
  const outcome: Outcome = { accepted: false, received: '' };
  const tlsServer = tls.createServer({
    key: server.keyPem,
    cert: server.certPem,
    ca: caPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const serverDone = new Promise<void>((resolve) => {
    tlsServer.on('secureConnection', (socket) => {
      outcome.accepted = true;
      const found = identityOf(socket.getPeerCertificate());
      if (found) {
        const { keyHash, ...identity } = found;
        outcome.identity = identity as PeerIdentity;
        outcome.keyHash = keyHash;
      }
      socket.end('ok', resolve);
    });
    tlsServer.on('tlsClientError', (_err, socket) => {
      outcome.serverRefusal = socket.authorizationError?.toString();
      resolve();
    });
  });
  tlsServer.listen(0, '127.0.0.1');
  await once(tlsServer, 'listening');
  try {
    const { port } = tlsServer.address() as AddressInfo;
    // host is an IP, so the server certificate is checked against its IP SAN.
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: caPem,
      cert: client.certPem,
      key: client.keyPem,
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      outcome.received += chunk;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      outcome.clientError = err.code;
    });
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    // Every connection ends on the server in `secureConnection` or `tlsClientError`
    // (a client that refuses the server hangs up mid-handshake).
    await serverDone;
  } finally {
    tlsServer.close();
    await once(tlsServer, 'close');
  }
  return outcome;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const longAgo = new Date(Date.now() - 30 * DAY_MS);

const ca = await createClusterCa();
const otherCa = await createClusterCa({ commonName: 'some-other-ca' });

const serverKey = await createKeyAndCsr({ commonName: 'controlplane' });
const serverCred: Credential = {
  keyPem: serverKey.keyPem,
  certPem: await signCsr(ca, serverKey.csrPem, {
    commonName: 'amalgam-controlplane',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    usages: ['server'],
    validityDays: 1,
  }),
};

const nodeKey = await createKeyAndCsr({ commonName: 'node-7', dnsNames: ['node-7'] });
const nodeCred = (certPem: string): Credential => ({ certPem, keyPem: nodeKey.keyPem });
const node7 = { ...nodeSubject('node-7'), usages: ['client' as const], validityDays: 1 };

t.test('a node certificate signed from a CSR authenticates as that node', async (t) => {
  const certPem = await signCsr(ca, nodeKey.csrPem, node7);
  const outcome = await handshake(ca.certPem, serverCred, nodeCred(certPem));
  t.equal(outcome.clientError, undefined, 'the client accepted the server (IP SAN 127.0.0.1)');
  t.ok(outcome.accepted, 'the server accepted the client');
  t.same(outcome.identity, { kind: 'node', name: 'node-7' });
  t.equal(
    outcome.keyHash,
    (await verifyCsr(nodeKey.csrPem)).publicKeyHash,
    'keyHash is the CSR key',
  );
  t.equal(outcome.received, 'ok');
});

t.test('the longest node name (63 characters) survives the handshake', async (t) => {
  const name = `n${'0'.repeat(62)}`;
  const certPem = await signCsr(ca, nodeKey.csrPem, { ...node7, ...nodeSubject(name) });
  const outcome = await handshake(ca.certPem, serverCred, nodeCred(certPem));
  t.same(outcome.identity, { kind: 'node', name });
});

t.test('the admin credential authenticates as admin', async (t) => {
  const admin = await issueAdminCredential(ca);
  const outcome = await handshake(ca.certPem, serverCred, admin);
  t.ok(outcome.accepted);
  t.same(outcome.identity, { kind: 'admin' });
});

t.test('a CSR asking to be admin still yields the node identity the caller chose', async (t) => {
  const sneaky = await createKeyAndCsr({ commonName: 'admin' });
  const certPem = await signCsr(ca, sneaky.csrPem, {
    ...nodeSubject('node-8'),
    usages: ['client'],
    validityDays: 1,
  });
  const outcome = await handshake(ca.certPem, serverCred, { certPem, keyPem: sneaky.keyPem });
  t.ok(outcome.accepted);
  t.same(outcome.identity, { kind: 'node', name: 'node-8' });
});

t.test('a client certificate from a different CA is refused', async (t) => {
  const certPem = await signCsr(otherCa, nodeKey.csrPem, node7);
  const outcome = await handshake(ca.certPem, serverCred, nodeCred(certPem));
  t.notOk(outcome.accepted);
  t.equal(outcome.serverRefusal, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  t.equal(outcome.received, '');
});

t.test('an expired client certificate is refused', async (t) => {
  const certPem = await signCsr(ca, nodeKey.csrPem, { ...node7, now: longAgo });
  const outcome = await handshake(ca.certPem, serverCred, nodeCred(certPem));
  t.notOk(outcome.accepted);
  t.equal(outcome.serverRefusal, 'CERT_HAS_EXPIRED');
});

t.test('an expired server certificate is refused by the client', async (t) => {
  const expiredServer: Credential = {
    keyPem: serverKey.keyPem,
    certPem: await signCsr(ca, serverKey.csrPem, {
      commonName: 'amalgam-controlplane',
      ipAddresses: ['127.0.0.1'],
      usages: ['server'],
      validityDays: 1,
      now: longAgo,
    }),
  };
  const outcome = await handshake(
    ca.certPem,
    expiredServer,
    nodeCred(await signCsr(ca, nodeKey.csrPem, node7)),
  );
  t.equal(outcome.clientError, 'CERT_HAS_EXPIRED');
  t.notOk(outcome.accepted);
});

t.test('a server-only certificate cannot be used as a client certificate', async (t) => {
  const serverOnly = await signCsr(ca, nodeKey.csrPem, { ...node7, usages: ['server'] });
  const outcome = await handshake(ca.certPem, serverCred, nodeCred(serverOnly));
  t.notOk(outcome.accepted);
  t.equal(outcome.serverRefusal, 'INVALID_PURPOSE');
});

t.test('a certificate with both usages serves and authenticates', async (t) => {
  const both = await signCsr(ca, nodeKey.csrPem, {
    ...node7,
    ipAddresses: ['127.0.0.1'],
    usages: ['server', 'client'],
  });
  const outcome = await handshake(ca.certPem, nodeCred(both), nodeCred(both));
  t.ok(outcome.accepted);
  t.same(outcome.identity, { kind: 'node', name: 'node-7' });
});
