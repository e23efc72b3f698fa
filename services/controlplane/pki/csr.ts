/**
 * What `clusteradm join` runs on the new machine: a fresh P-256 key and a CSR
 * for it. The private key never leaves the machine; only the CSR is sent.
 * The subject and SAN asked for here are informational (the control plane
 * decides the certificate's identity), but they make the CSR readable in logs.
 */

import { generateKeyPair } from './keys.ts';
import { encodePem } from './pem.ts';
import { requireDnsNames, requireIpAddresses, requireNameAttribute } from './validate.ts';
import { SIGNING_ALGORITHM, webCrypto, x509 } from './x509-provider.ts';

export interface CreateKeyAndCsrOptions {
  commonName: string;
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
  const { keys, keyPem } = await generateKeyPair();
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
