import { createHash, X509Certificate } from 'node:crypto';
import t from 'tap';
import { caCertHash, createClusterCa, verifyCaCertHash } from '../../../services/pki/index.ts';

const ca = await createClusterCa();
const otherCa = await createClusterCa();

/** The pin computed independently, by Node, from the certificate's public key. */
function independentPin(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

t.test('caCertHash is the SHA-256 of the DER SubjectPublicKeyInfo', async (t) => {
  const pin = caCertHash(ca.certPem);
  t.match(pin, /^sha256:[0-9a-f]{64}$/);
  t.equal(pin, independentPin(ca.certPem));
  t.not(caCertHash(otherCa.certPem), pin);
});

t.test('the pin accepts its CA, in either case of hex', async (t) => {
  const pin = caCertHash(ca.certPem);
  t.equal(verifyCaCertHash(ca.certPem, pin), true);
  t.equal(verifyCaCertHash(ca.certPem, `sha256:${pin.slice(7).toUpperCase()}`), true);
});

t.test('the pin rejects another CA and any wrong or malformed hash', async (t) => {
  const pin = caCertHash(ca.certPem);
  const hex = pin.slice(7);
  const lastFlipped = `${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`;
  t.equal(verifyCaCertHash(otherCa.certPem, pin), false, 'another CA');
  t.equal(verifyCaCertHash(ca.certPem, caCertHash(otherCa.certPem)), false, "another CA's pin");
  t.equal(verifyCaCertHash(ca.certPem, `sha256:${lastFlipped}`), false, 'one digit off');
  for (const malformed of [
    hex,
    `SHA256:${hex}`,
    `sha1:${hex}`,
    `sha256:${hex.slice(1)}`,
    `sha256:${hex}0`,
    `sha256:${hex.slice(1)}g`,
    ` ${pin}`,
    `${pin}\n`,
    '',
    undefined as unknown as string,
  ]) {
    t.equal(
      verifyCaCertHash(ca.certPem, malformed),
      false,
      `malformed ${JSON.stringify(malformed)}`,
    );
  }
  t.equal(verifyCaCertHash('not a certificate', pin), false, 'malformed certificate');
});

t.test('caCertHash refuses what is not one certificate', async (t) => {
  t.throws(() => caCertHash('garbage'), { code: 'INVALID_ARGUMENT' });
  t.throws(() => caCertHash(ca.keyPem), { code: 'INVALID_ARGUMENT' });
  t.throws(() => caCertHash(`${ca.certPem}${otherCa.certPem}`), { code: 'INVALID_ARGUMENT' });
});
