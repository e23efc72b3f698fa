/** clusterd's etcd client credentials are checked before any connection, naming the field. */
import t from 'tap';
import { createEtcdCa, issueEtcdCredential } from '../../../services/pki/index.ts';
import {
  checkEndpointSchemes,
  checkEtcdCredentials,
  type EtcdCredentials,
} from '../../../services/store/etcd-tls.ts';

const ca = await createEtcdCa();
const client = await issueEtcdCredential(ca, { kind: 'client', commonName: 'clusterd' });
const good: EtcdCredentials = {
  rootCertificate: Buffer.from(ca.certPem),
  certChain: Buffer.from(client.certPem),
  privateKey: Buffer.from(client.keyPem),
};

function fieldOf(fn: () => void): unknown {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string; details?: { field?: string } }).code === 'INVALID_ARGUMENT'
      ? (err as { details: { field?: string } }).details.field
      : err;
  }
}

t.test('the right three pass', (t) => {
  t.equal(
    fieldOf(() => checkEtcdCredentials(good)),
    undefined,
  );
  t.end();
});

t.test('each wrong file is named', async (t) => {
  const other = await createEtcdCa();
  const forged = await issueEtcdCredential(other, { kind: 'client', commonName: 'clusterd' });
  t.equal(
    fieldOf(() =>
      checkEtcdCredentials({
        ...good,
        certChain: Buffer.from(forged.certPem),
        privateKey: Buffer.from(forged.keyPem),
      }),
    ),
    'store.tls.cert',
    'a certificate of another CA',
  );
  t.equal(
    fieldOf(() => checkEtcdCredentials({ ...good, privateKey: Buffer.from(forged.keyPem) })),
    'store.tls.key',
    'a key that is not the certificate’s',
  );
  t.equal(
    fieldOf(() => checkEtcdCredentials({ ...good, rootCertificate: Buffer.from('nope') })),
    'store.tls.ca',
    'not a certificate',
  );
  t.equal(
    fieldOf(() => checkEtcdCredentials({ ...good, rootCertificate: Buffer.from(client.certPem) })),
    'store.tls.ca',
    'not a CA',
  );
  const server = await issueEtcdCredential(ca, {
    kind: 'server',
    commonName: 'm0',
    ipAddresses: ['127.0.0.1'],
  });
  t.equal(
    fieldOf(() =>
      checkEtcdCredentials({
        ...good,
        certChain: Buffer.from(server.certPem),
        privateKey: Buffer.from(server.keyPem),
      }),
    ),
    undefined,
    'a server certificate also dials (clientAuth), as etcd’s own gateway does',
  );
  t.equal(
    fieldOf(() => checkEtcdCredentials(good, 'store.tls', new Date(Date.now() + 400 * 86_400_000))),
    'store.tls.cert',
    'expired',
  );
});

t.test('endpoints and credentials agree', (t) => {
  t.equal(
    fieldOf(() => checkEndpointSchemes(['https://a:2379'], true)),
    undefined,
  );
  t.equal(
    fieldOf(() => checkEndpointSchemes(['http://a:2379'], false)),
    undefined,
  );
  t.equal(
    fieldOf(() => checkEndpointSchemes(['https://a:2379'], false)),
    'store.tls',
  );
  t.equal(
    fieldOf(() => checkEndpointSchemes(['https://a:2379', 'http://b:2379'], true)),
    'store.endpoints',
  );
  t.end();
});
