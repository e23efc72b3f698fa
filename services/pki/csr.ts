/**
 * What `clusteradm join` runs on the new machine: a fresh P-256 key and a CSR
 * for it. The private key never leaves the machine; only the CSR is sent.
 * The subject and SAN asked for here are informational (the control plane
 * decides the certificate's identity), but they make the CSR readable in logs.
 */

import { createPublicKey, type webcrypto } from 'node:crypto';
import { type GeneratedKeyPair, generateKeyPair, loadPrivateKey } from './keys.ts';
import { encodePem } from './pem.ts';
import { requireDnsNames, requireIpAddresses, requireNameAttribute } from './validate.ts';
import { EC_KEY_ALGORITHM, SIGNING_ALGORITHM, webCrypto, x509 } from './x509-provider.ts';

export interface CreateKeyAndCsrOptions {
  commonName: string;
  /**
   * Reuse this PKCS#8 PEM P-256 key instead of making a new one: a machine
   * that joins again with its key is the same node (INVALID_ARGUMENT naming
   * `keyPem` when it is not such a key).
   */
  keyPem?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface KeyAndCsr {
  /** PKCS#8 PEM; keep it on this machine. */
  keyPem: string;
  csrPem: string;
}

export async function createKeyAndCsr(options: CreateKeyAndCsrOptions): Promise<KeyAndCsr> {
  const commonName = requireNameAttribute(options?.commonName, 'commonName');
  const altNames: x509.JsonGeneralNames = [
    ...requireDnsNames(options.dnsNames, 'dnsNames').map((value) => ({
      type: 'dns' as const,
      value,
    })),
    ...requireIpAddresses(options.ipAddresses, 'ipAddresses').map((value) => ({
      type: 'ip' as const,
      value,
    })),
  ];
  const { keys, keyPem } =
    options.keyPem === undefined ? await generateKeyPair() : await existingKeyPair(options.keyPem);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: [{ CN: [commonName] }],
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions:
        altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames, false)] : [],
    },
    webCrypto,
  );
  return { keyPem, csrPem: encodePem(csr.rawData, 'CERTIFICATE REQUEST') };
}

async function existingKeyPair(keyPem: string): Promise<GeneratedKeyPair> {
  const key = loadPrivateKey(keyPem, 'keyPem');
  const importKey = (format: 'pkcs8' | 'spki', der: Buffer, usage: webcrypto.KeyUsage) =>
    webCrypto.subtle.importKey(format, der, EC_KEY_ALGORITHM, true, [usage]);
  const keys = {
    privateKey: await importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), 'sign'),
    publicKey: await importKey(
      'spki',
      createPublicKey(key).export({ type: 'spki', format: 'der' }),
      'verify',
    ),
  };
  return { keys, keyPem };
}
