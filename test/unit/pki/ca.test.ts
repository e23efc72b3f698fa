import { createPrivateKey, X509Certificate } from 'node:crypto';
import t from 'tap';
import { createClusterCa } from '../../../services/pki/index.ts';
import { x509 } from '../../../services/pki/x509-provider.ts';

t.test('the cluster CA is a self-signed P-256 CA that can only sign', async (t) => {
  const ca = await createClusterCa();
  const cert = new X509Certificate(ca.certPem);
  t.equal(cert.subject, 'CN=amalgam-cluster-ca');
  t.equal(cert.issuer, cert.subject);
  t.ok(cert.verify(cert.publicKey), 'self-signed');
  t.equal(cert.ca, true);
  t.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');

  const key = createPrivateKey(ca.keyPem);
  t.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  t.equal(key.asymmetricKeyType, 'ec');
  t.ok(cert.checkPrivateKey(key), 'the key is the certificate key');

  const parsed = new x509.X509Certificate(ca.certPem);
  const basic = parsed.getExtension(x509.BasicConstraintsExtension);
  t.equal(basic?.ca, true);
  t.equal(basic?.critical, true);
  t.equal(basic?.pathLength, 0, 'it signs leaves only');
  const keyUsage = parsed.getExtension(x509.KeyUsagesExtension);
  t.equal(keyUsage?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  t.equal(keyUsage?.critical, true);
  t.match(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, /^[0-9a-f]{40}$/);
});

t.test('commonName, validityDays and now are honoured', async (t) => {
  const now = new Date('2031-06-01T12:00:00Z');
  const ca = await createClusterCa({ commonName: 'lab-ca', validityDays: 2, now });
  const cert = new X509Certificate(ca.certPem);
  t.equal(cert.subject, 'CN=lab-ca');
  t.equal(new Date(cert.validTo).getTime(), now.getTime() + 2 * 86_400_000);
  t.ok(new Date(cert.validFrom).getTime() <= now.getTime());
});

t.test('bad options are INVALID_ARGUMENT', async (t) => {
  const invalid = { code: 'INVALID_ARGUMENT' };
  await t.rejects(createClusterCa({ validityDays: -1 }), invalid);
  await t.rejects(createClusterCa({ validityDays: 100_000 }), invalid);
  await t.rejects(createClusterCa({ commonName: '' }), invalid);
});
