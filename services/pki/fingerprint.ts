/**
 * Pinning the cluster CA. The pin is `sha256:<hex>` over the DER
 * SubjectPublicKeyInfo of the CA certificate, exactly what kubeadm's
 * `--discovery-token-ca-cert-hash` is: it names the CA's key, so it survives
 * re-issuing the CA certificate with the same key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AmalgamError } from '../core/errors.ts';
import { decodeSinglePem } from './pem.ts';
import { x509 } from './x509-provider.ts';

const PIN = /^sha256:([0-9a-fA-F]{64})$/;

function spkiOf(certPem: unknown): ArrayBuffer | undefined {
  const der = decodeSinglePem(certPem, 'CERTIFICATE');
  if (der === undefined) return undefined;
  try {
    return new x509.X509Certificate(der).publicKey.rawData;
  } catch {
    return undefined;
  }
}

/** `sha256:<64 lower-case hex>` of a DER SubjectPublicKeyInfo. */
export function publicKeyHash(spkiDer: ArrayBuffer): string {
  return `sha256:${createHash('sha256').update(Buffer.from(spkiDer)).digest('hex')}`;
}

/** `sha256:<64 lower-case hex>`; INVALID_ARGUMENT when `certPem` is not one PEM certificate. */
export function caCertHash(certPem: string): string {
  const spki = spkiOf(certPem);
  if (spki === undefined) {
    throw new AmalgamError('INVALID_ARGUMENT', 'certPem: one PEM CERTIFICATE is required', {
      field: 'certPem',
    });
  }
  return publicKeyHash(spki);
}

/**
 * Whether `certPem` is the CA that `expected` pins. Hex digits may be upper or
 * lower case; anything else that is not `sha256:` and 64 hex digits, and any
 * `certPem` that is not one certificate, is false. The digests are compared in
 * constant time.
 */
export function verifyCaCertHash(certPem: string, expected: string): boolean {
  const match = typeof expected === 'string' ? PIN.exec(expected) : null;
  const spki = spkiOf(certPem);
  if (match?.[1] === undefined || spki === undefined) return false;
  const actual = createHash('sha256').update(Buffer.from(spki)).digest();
  return timingSafeEqual(actual, Buffer.from(match[1], 'hex'));
}
