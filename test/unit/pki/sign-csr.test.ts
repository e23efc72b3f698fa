import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import t from 'tap';
import {
  caCertHash,
  createClusterCa,
  createKeyAndCsr,
  nodeSubject,
  signCsr,
  verifyCsr,
} from '../../../services/pki/index.ts';
import { webCrypto, x509 } from '../../../services/pki/x509-provider.ts';

const ca = await createClusterCa();
const caCert = new X509Certificate(ca.certPem);
const { csrPem } = await createKeyAndCsr({ commonName: 'tamper-me', dnsNames: ['asked.example'] });
const node = { ...nodeSubject('node-1'), usages: ['client' as const], validityDays: 7 };

function pemToDer(pem: string): Buffer {
  return Buffer.from(x509.PemConverter.decodeFirst(pem));
}
function derToPem(der: Buffer, type = 'CERTIFICATE REQUEST'): string {
  return `${x509.PemConverter.encode(der, type)}\n`;
}
function flipBit(der: Buffer, at: number): void {
  der.writeUInt8(der.readUInt8(at) ^ 0x01, at);
}
/** The CSR with one byte of `needle` (somewhere in the signed part) changed. */
function tampered(pem: string, needle: string): string {
  const der = pemToDer(pem);
  const at = der.indexOf(needle);
  if (at < 0) throw new Error(`${needle} not in CSR`);
  flipBit(der, at);
  return derToPem(der);
}

t.test('the issued certificate carries what the caller decided', async (t) => {
  const now = new Date('2030-01-01T00:00:00Z');
  const pem = await signCsr(ca, csrPem, {
    ...nodeSubject('node-1'),
    dnsNames: ['node-1.cluster.local'],
    ipAddresses: ['10.0.0.7', 'fd00::7'],
    usages: ['server', 'client'],
    validityDays: 30,
    now,
  });
  const cert = new X509Certificate(pem);
  t.equal(cert.subject, 'O=amalgam:nodes\nCN=node:node-1');
  t.equal(cert.issuer, caCert.subject);
  t.ok(cert.checkIssued(caCert), 'issued by the CA');
  t.ok(cert.verify(caCert.publicKey), 'signed by the CA key');
  t.equal(cert.ca, false);
  t.equal(
    cert.subjectAltName,
    'DNS:node-1.cluster.local, IP Address:10.0.0.7, IP Address:FD00:0:0:0:0:0:0:7',
  );
  t.same([...(cert.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  t.equal(new Date(cert.validTo).getTime(), now.getTime() + 30 * 86_400_000);
  t.ok(new Date(cert.validFrom).getTime() < now.getTime(), 'notBefore allows for clock skew');

  const parsed = new x509.X509Certificate(pem);
  const basic = parsed.getExtension(x509.BasicConstraintsExtension);
  t.equal(basic?.ca, false);
  t.equal(basic?.critical, true);
  const keyUsage = parsed.getExtension(x509.KeyUsagesExtension);
  t.equal(keyUsage?.usages, x509.KeyUsageFlags.digitalSignature);
  t.equal(keyUsage?.critical, true);
  const aki = parsed.getExtension(x509.AuthorityKeyIdentifierExtension);
  const caSki = new x509.X509Certificate(ca.certPem).getExtension(
    x509.SubjectKeyIdentifierExtension,
  );
  t.ok(caSki?.keyId);
  t.equal(aki?.keyId, caSki?.keyId, 'authorityKeyIdentifier is the CA subjectKeyIdentifier');
  // The library types its algorithms with the DOM lib, which this project does not load.
  const algorithm = parsed.signatureAlgorithm as unknown as {
    name: string;
    hash: { name: string };
  };
  t.same([algorithm.name, algorithm.hash.name], ['ECDSA', 'SHA-256'], 'ecdsa-with-SHA256');
});

t.test('serial numbers are random 128-bit positive integers', async (t) => {
  const serials = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const cert = new X509Certificate(await signCsr(ca, csrPem, node));
    // 16 random octets; a leading zero octet may be added (positive) or dropped (minimal).
    t.ok(BigInt(`0x${cert.serialNumber}`) < 1n << 128n);
    t.ok(cert.serialNumber.length >= 20, 'not a small number');
    serials.add(cert.serialNumber);
  }
  t.equal(serials.size, 4);
});

t.test('the subject and extensions requested in the CSR are ignored', async (t) => {
  const keys = await webCrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const greedy = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: [{ O: ['amalgam:admins'] }, { CN: ['admin'] }],
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'evil.example' }]),
      ],
    },
    webCrypto,
  );
  const pem = await signCsr(ca, greedy.toString('pem'), node);
  const cert = new X509Certificate(pem);
  t.equal(cert.subject, 'O=amalgam:nodes\nCN=node:node-1');
  t.equal(cert.ca, false);
  t.equal(cert.subjectAltName, undefined, 'no SAN was asked for by the caller');
  const keyUsage = new x509.X509Certificate(pem).getExtension(x509.KeyUsagesExtension);
  t.equal(keyUsage?.usages, x509.KeyUsageFlags.digitalSignature);
  // The public key is the one thing taken from the CSR.
  t.same(
    cert.publicKey.export({ type: 'spki', format: 'der' }),
    Buffer.from(await webCrypto.subtle.exportKey('spki', keys.publicKey)),
  );
});

t.test('a tampered or malformed CSR is refused with CSR_INVALID', async (t) => {
  const csrInvalid = { code: 'CSR_INVALID' };
  await t.rejects(signCsr(ca, tampered(csrPem, 'tamper-me'), node), csrInvalid, 'subject changed');
  await t.rejects(
    signCsr(ca, tampered(csrPem, 'asked.example'), node),
    csrInvalid,
    'requested SAN changed',
  );
  const der = pemToDer(csrPem);
  flipBit(der, der.length - 1);
  await t.rejects(signCsr(ca, derToPem(der), node), csrInvalid, 'signature changed');
  await t.rejects(signCsr(ca, derToPem(der.subarray(0, 40)), node), csrInvalid, 'truncated');
  await t.rejects(signCsr(ca, 'not a csr', node), csrInvalid, 'not PEM');
  await t.rejects(signCsr(ca, `${csrPem}${csrPem}`, node), csrInvalid, 'two CSRs');
  await t.rejects(signCsr(ca, ca.certPem, node), csrInvalid, 'a certificate, not a CSR');
  await t.rejects(signCsr(ca, 'x'.repeat(1 << 20), node), csrInvalid, 'oversized');
  await t.rejects(signCsr(ca, undefined as unknown as string, node), csrInvalid, 'missing');
});

t.test('a CSR for a key that is not P-256 is refused with CSR_INVALID', async (t) => {
  const keys = await webCrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, [
    'sign',
    'verify',
  ]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: 'CN=n', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } },
    webCrypto,
  );
  t.ok(await csr.verify(webCrypto), 'the CSR itself is well signed');
  await t.rejects(signCsr(ca, csr.toString('pem'), node), { code: 'CSR_INVALID' });
});

t.test("the caller's mistakes are INVALID_ARGUMENT", async (t) => {
  const invalid = { code: 'INVALID_ARGUMENT' };
  await t.rejects(signCsr(ca, csrPem, { ...node, usages: [] }), invalid, 'no usage');
  await t.rejects(
    signCsr(ca, csrPem, { ...node, usages: ['email' as 'client'] }),
    invalid,
    'unknown usage',
  );
  await t.rejects(signCsr(ca, csrPem, { ...node, validityDays: 0 }), invalid, 'no validity');
  await t.rejects(signCsr(ca, csrPem, { ...node, commonName: '' }), invalid, 'empty CN');
  await t.rejects(signCsr(ca, csrPem, { ...node, commonName: 'a\nb' }), invalid, 'control char');
  await t.rejects(signCsr(ca, csrPem, { ...node, ipAddresses: ['10.0.0'] }), invalid, 'bad IP');
  await t.rejects(signCsr(ca, csrPem, { ...node, dnsNames: ['*.example'] }), invalid, 'wildcard');
  await t.rejects(signCsr(ca, csrPem, { ...node, now: new Date(Number.NaN) }), invalid, 'bad now');
  const otherCa = await createClusterCa();
  await t.rejects(
    signCsr({ certPem: ca.certPem, keyPem: otherCa.keyPem }, csrPem, node),
    invalid,
    'CA key does not match the CA certificate',
  );
  const leaf = await signCsr(ca, csrPem, node);
  await t.rejects(
    signCsr({ certPem: leaf, keyPem: ca.keyPem }, csrPem, node),
    invalid,
    'not a CA certificate',
  );
  t.throws(() => nodeSubject('Node_1'), invalid, 'not a node name');
});

t.test('verifyCsr checks a CSR without signing it and names its key', async (t) => {
  const { keyPem, csrPem: pem } = await createKeyAndCsr({ commonName: 'joiner' });
  const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  const expected = `sha256:${createHash('sha256').update(spki).digest('hex')}`;
  t.same(await verifyCsr(pem), { publicKeyHash: expected });
  t.equal(caCertHash(await signCsr(ca, pem, node)), expected, 'the certificate has the same key');
  await t.rejects(verifyCsr(tampered(pem, 'joiner')), { code: 'CSR_INVALID' });
  await t.rejects(verifyCsr('garbage'), { code: 'CSR_INVALID' });
});
