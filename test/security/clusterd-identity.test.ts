/**
 * clusterd's pinned identity. Node certificates are signed by the cluster CA
 * and serve TLS (page servers, agent endpoints), so a client that checked
 * only the chain and the host name would take a node for clusterd. Now:
 * - join issues node certificates without any DNS or IP SAN;
 * - every client of clusterd (services/client, REST and gRPC) requires
 *   clusterd's subject, CN clusterd / O amalgam:control-plane: a node
 *   certificate served at clusterd's address, even one whose SAN matches
 *   the host, is refused in the handshake and no request reaches it.
 */
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createClient } from '../../services/client/index.ts';
import {
  type ClusterCa,
  clusterdSubject,
  createKeyAndCsr,
  nodeSubject,
  signCsr,
} from '../../services/pki/index.ts';
import { startCluster } from './cluster-fixture.ts';

/** A server certificate for 127.0.0.1 with `subject`: what an attacker holding a node key could serve. */
async function serverCertificate(
  ca: ClusterCa,
  subject: { commonName: string; organization: string },
) {
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: subject.commonName });
  const certPem = await signCsr(ca, csrPem, {
    ...subject,
    ipAddresses: ['127.0.0.1'],
    dnsNames: ['localhost'],
    usages: ['server', 'client'],
    validityDays: 1,
  });
  return { keyPem, certPem };
}

t.test('a node certificate carries no SAN', async (t) => {
  const cluster = await startCluster(t);
  const node = await cluster.join('localhost');
  const cert = new X509Certificate(node.certPem);
  t.equal(cert.subjectAltName, undefined, 'no DNS or IP name a client could match');
  t.match(cert.subject, /CN=node:localhost/);
});

t.test('REST: a server with a node certificate is not clusterd', async (t) => {
  const cluster = await startCluster(t);
  for (const [what, subject, reaches] of [
    ['node certificate', nodeSubject('localhost'), false],
    ["clusterd's subject", clusterdSubject(), true],
  ] as const) {
    const served = await serverCertificate(cluster.ca, subject);
    let requests = 0;
    const fake = createServer({ key: served.keyPem, cert: served.certPem }, (_req, res) => {
      requests++;
      res.writeHead(503, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => fake.close(() => resolve())));
    const { port } = fake.address() as AddressInfo;
    for (const host of ['127.0.0.1', 'localhost']) {
      const client = createClient({
        endpoints: [`https://${host}:${port}`],
        ca: cluster.ca.certPem,
        cert: cluster.admin.certPem,
        key: cluster.admin.keyPem,
        timeoutMs: 5_000,
      });
      const error = await client.cluster.info().then(
        () => undefined,
        (err: unknown) => err,
      );
      await client.close();
      t.ok(error, `${what} at ${host}: the call does not succeed`);
      if (!reaches)
        t.match(String((error as Error)?.message), /not clusterd|ERR_TLS_CERT_NOT_CLUSTERD/);
    }
    t.equal(requests > 0, reaches, `${what}: ${reaches ? 'reached' : 'no request reached it'}`);
  }
});

t.test('gRPC: a server with a node certificate is not clusterd', async (t) => {
  const cluster = await startCluster(t);
  const outcomes: Record<string, string> = {};
  for (const [what, subject] of [
    ['node', nodeSubject('localhost')],
    ['clusterd', clusterdSubject()],
  ] as const) {
    const served = await serverCertificate(cluster.ca, subject);
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        '127.0.0.1:0',
        grpc.ServerCredentials.createSsl(null, [
          { private_key: Buffer.from(served.keyPem), cert_chain: Buffer.from(served.certPem) },
        ]),
        (err, p) => (err ? reject(err) : resolve(p)),
      ),
    );
    t.teardown(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
    const client = createClient({
      transport: 'grpc',
      endpoints: [`127.0.0.1:${port}`],
      ca: cluster.ca.certPem,
      cert: cluster.admin.certPem,
      key: cluster.admin.keyPem,
      timeoutMs: 5_000,
    });
    outcomes[what] = await client.cluster.info().then(
      () => 'answered',
      (err: Error) => `${(err as { code?: string }).code}: ${err.message}`,
    );
    await client.close();
  }
  t.notMatch(
    outcomes.clusterd,
    /not clusterd/,
    `clusterd's subject passes the check (${outcomes.clusterd})`,
  );
  t.match(outcomes.node, /not clusterd/, `the node is refused in the handshake (${outcomes.node})`);
});

t.test('the real clusterd passes, over REST and gRPC', async (t) => {
  const cluster = await startCluster(t);
  for (const transport of ['rest', 'grpc'] as const) {
    const client =
      transport === 'rest'
        ? createClient({
            endpoints: [cluster.url],
            ca: cluster.ca.certPem,
            cert: cluster.admin.certPem,
            key: cluster.admin.keyPem,
          })
        : createClient({
            transport,
            endpoints: [cluster.grpcAddress],
            ca: cluster.ca.certPem,
            cert: cluster.admin.certPem,
            key: cluster.admin.keyPem,
          });
    t.equal((await client.cluster.info()).name, 'security', transport);
    await client.close();
  }
});
