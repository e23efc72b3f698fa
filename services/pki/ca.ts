/**
 * The cluster CA: created once at `init`, self-signed, and the only issuer
 * any amalgam endpoint trusts. Its private key signs node, admin and server
 * certificates and nothing else (pathLen 0: it never certifies another CA).
 */
import type { webcrypto } from 'node:crypto';
import { AmalgamError } from '../core/errors.ts';
import { generateKeyPair, keyMatchesPublicKey, loadPrivateKey, toSigningKey } from './keys.ts';
import { decodeSinglePem, encodePem } from './pem.ts';
import { randomSerialNumber } from './serial.ts';
import {
  requireNameAttribute,
  requireNow,
  requireValidityDays,
  validityWindow,
} from './validate.ts';
import { SIGNING_ALGORITHM, webCrypto, x509 } from './x509-provider.ts';

/** The CA as the control plane stores it: both halves in PEM. */
export interface ClusterCa {
  certPem: string;
  /** PKCS#8 (or SEC1) PEM, unencrypted. */
  keyPem: string;
}

export interface CreateClusterCaOptions {
  commonName?: string;
  /** Default 3650 (ten years, as kubeadm). */
  validityDays?: number;
  now?: Date;
}

export const DEFAULT_CA_COMMON_NAME = 'amalgam-cluster-ca';
export const DEFAULT_CA_VALIDITY_DAYS = 3650;

export async function createClusterCa(options: CreateClusterCaOptions = {}): Promise<ClusterCa> {
  const commonName = requireNameAttribute(
    options.commonName ?? DEFAULT_CA_COMMON_NAME,
    'commonName',
  );
  const validityDays = requireValidityDays(options.validityDays ?? DEFAULT_CA_VALIDITY_DAYS);
  const { notBefore, notAfter } = validityWindow(requireNow(options.now), validityDays);
  const { keys, keyPem } = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      name: [{ CN: [commonName] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webCrypto),
      ],
    },
    webCrypto,
  );
  return { certPem: encodePem(cert.rawData, 'CERTIFICATE'), keyPem };
}

/** A CA ready to sign: its parsed certificate, signing key and key identifier. */
export interface CaSigner {
  cert: x509.X509Certificate;
  signingKey: webcrypto.CryptoKey;
  /** Hex subjectKeyIdentifier of the CA, copied into the authorityKeyIdentifier of what it signs. */
  keyId: string;
}

/**
 * Checks that `ca` is a CA certificate and its own private key, then imports
 * the key for signing. INVALID_ARGUMENT when it is not.
 */
export async function loadCaSigner(ca: ClusterCa): Promise<CaSigner> {
  const der = decodeSinglePem(ca?.certPem, 'CERTIFICATE');
  if (der === undefined) {
    throw new AmalgamError('INVALID_ARGUMENT', 'ca.certPem: one PEM CERTIFICATE is required', {
      field: 'ca.certPem',
    });
  }
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(der);
  } catch (cause) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      'ca.certPem: not an X.509 certificate',
      { field: 'ca.certPem' },
      { cause },
    );
  }
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) {
    throw new AmalgamError('INVALID_ARGUMENT', 'ca.certPem: not a CA certificate', {
      field: 'ca.certPem',
    });
  }
  const privateKey = loadPrivateKey(ca.keyPem, 'ca.keyPem');
  if (!keyMatchesPublicKey(privateKey, cert.publicKey.rawData)) {
    throw new AmalgamError('INVALID_ARGUMENT', 'ca.keyPem: not the key of ca.certPem', {
      field: 'ca.keyPem',
    });
  }
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId =
    ski?.keyId ??
    (await x509.SubjectKeyIdentifierExtension.create(cert.publicKey, false, webCrypto)).keyId;
  return { cert, signingKey: await toSigningKey(privateKey), keyId };
}
