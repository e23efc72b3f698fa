import { createPrivateKey, createPublicKey } from 'node:crypto';
import t from 'tap';
import { createKeyAndCsr } from '../../../services/pki/index.ts';
import { webCrypto, x509 } from '../../../services/pki/x509-provider.ts';

t.test('createKeyAndCsr makes a P-256 key and a CSR signed by it', async (t) => {
  const { keyPem, csrPem } = await createKeyAndCsr({
    commonName: 'worker-1',
    dnsNames: ['worker-1.lan'],
    ipAddresses: ['192.168.1.20'],
  });
  t.match(
    csrPem,
    /^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+\n-----END CERTIFICATE REQUEST-----\n$/,
  );
  const key = createPrivateKey(keyPem);
  t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');

  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  t.ok(await csr.verify(webCrypto), 'self-signature verifies');
  t.equal(csr.subject, 'CN=worker-1');
  const requested = csr.getExtension('2.5.29.17' /* subjectAltName */);
  const san = requested && new x509.SubjectAlternativeNameExtension(requested.rawData);
  t.same(san?.names.toJSON(), [
    { type: 'dns', value: 'worker-1.lan' },
    { type: 'ip', value: '192.168.1.20' },
  ]);
  const csrKey = Buffer.from(csr.publicKey.rawData);
  const ownKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
  t.same(csrKey, ownKey, 'the CSR is for the returned key');
});

t.test('every call makes a new key', async (t) => {
  const a = await createKeyAndCsr({ commonName: 'n' });
  const b = await createKeyAndCsr({ commonName: 'n' });
  t.not(a.keyPem, b.keyPem);
});

t.test('bad options are INVALID_ARGUMENT', async (t) => {
  await t.rejects(createKeyAndCsr({ commonName: '' }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(createKeyAndCsr({ commonName: 'n', ipAddresses: ['x'] }), {
    code: 'INVALID_ARGUMENT',
  });
});
