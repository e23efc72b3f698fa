/**
 * Issuing a leaf certificate: the identity and extensions come only from the
 * control plane's `IssueOptions`; the subject public key is the only thing
 * taken from the requester.
 */
import type { webcrypto } from 'node:crypto';
import { AmalgamError } from '../core/errors.ts';
import type { CaSigner } from './ca.ts';
import { encodePem } from './pem.ts';
import { randomSerialNumber } from './serial.ts';
import {
  requireDnsNames,
  requireIpAddresses,
  requireNameAttribute,
  requireNow,
  requireValidityDays,
  validityWindow,
} from './validate.ts';
import { SIGNING_ALGORITHM, webCrypto, x509 } from './x509-provider.ts';

export type CertificateUsage = 'server' | 'client';

export interface IssueOptions {
  commonName: string;
  organization?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** extKeyUsage: `server` → serverAuth, `client` → clientAuth. At least one. */
  usages: CertificateUsage[];
  validityDays: number;
  now?: Date;
}

const EXTENDED_KEY_USAGE: Record<CertificateUsage, string> = {
  server: x509.ExtendedKeyUsage.serverAuth,
  client: x509.ExtendedKeyUsage.clientAuth,
};

/** The validated, normalised form of `IssueOptions`. */
export interface IssueSpec {
  commonName: string;
  organization: string | undefined;
  dnsNames: string[];
  ipAddresses: string[];
  usages: CertificateUsage[];
  notBefore: Date;
  notAfter: Date;
}

export function validateIssueOptions(options: IssueOptions): IssueSpec {
  if (typeof options !== 'object' || options === null) {
    throw new AmalgamError('INVALID_ARGUMENT', 'options: an object is required', {
      field: 'options',
    });
  }
  const { usages } = options;
  if (
    !Array.isArray(usages) ||
    usages.length === 0 ||
    !usages.every((u) => u === 'server' || u === 'client')
  ) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      "usages: a non-empty array of 'server' and 'client' is required",
      { field: 'usages' },
    );
  }
  const { notBefore, notAfter } = validityWindow(
    requireNow(options.now),
    requireValidityDays(options.validityDays),
  );
  return {
    commonName: requireNameAttribute(options.commonName, 'commonName'),
    organization:
      options.organization === undefined
        ? undefined
        : requireNameAttribute(options.organization, 'organization'),
    dnsNames: requireDnsNames(options.dnsNames, 'dnsNames'),
    ipAddresses: requireIpAddresses(options.ipAddresses, 'ipAddresses'),
    usages: [...new Set(usages)],
    notBefore,
    notAfter,
  };
}

/** Signs a certificate for `publicKey` (DER SubjectPublicKeyInfo or CryptoKey) as `spec` says. */
export async function issueCertificate(
  signer: CaSigner,
  publicKey: ArrayBuffer | webcrypto.CryptoKey,
  spec: IssueSpec,
): Promise<string> {
  const subject: x509.JsonName = [];
  if (spec.organization !== undefined) subject.push({ O: [spec.organization] });
  subject.push({ CN: [spec.commonName] });

  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      spec.usages.map((u) => EXTENDED_KEY_USAGE[u]),
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(publicKey, false, webCrypto),
    new x509.AuthorityKeyIdentifierExtension(signer.keyId, false),
  ];
  const altNames: x509.JsonGeneralNames = [
    ...spec.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...spec.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  if (altNames.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(altNames, false));
  }

  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialNumber(),
      subject,
      issuer: signer.cert.subjectName,
      notBefore: spec.notBefore,
      notAfter: spec.notAfter,
      publicKey,
      signingKey: signer.signingKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions,
    },
    webCrypto,
  );
  return encodePem(cert.rawData, 'CERTIFICATE');
}
