/**
 * Signing a joining machine's CSR. The CSR proves possession of a P-256 key
 * (its self-signature must verify) and contributes that public key, nothing
 * else: its subject and requested extensions are ignored. The node's name and
 * every extension come from the control plane, which learnt the name from the
 * token-authenticated join, so a CSR asking for `CN=admin` or `CA:TRUE`
 * changes nothing.
 */
import { AmalgamError } from '../core/errors.ts';
import type { ClusterCa } from './ca.ts';
import { loadCaSigner } from './ca.ts';
import { publicKeyHash } from './fingerprint.ts';
import { type IssueOptions, issueCertificate, validateIssueOptions } from './issue.ts';
import { isP256PublicKey } from './keys.ts';
import { decodeSinglePem } from './pem.ts';
import { webCrypto, x509 } from './x509-provider.ts';

function csrInvalid(detail: string, cause?: unknown): AmalgamError {
  return new AmalgamError('CSR_INVALID', detail, {}, cause === undefined ? undefined : { cause });
}

const ACCEPTED_CSR_HASHES = new Set(['SHA-256', 'SHA-384', 'SHA-512']);

export async function signCsr(
  ca: ClusterCa,
  csrPem: string,
  options: IssueOptions,
): Promise<string> {
  const spec = validateIssueOptions(options);
  const signer = await loadCaSigner(ca);
  const publicKey = await verifiedCsrPublicKey(csrPem);
  return issueCertificate(signer, publicKey, spec);
}

/**
 * Checks a CSR as `signCsr` does (CSR_INVALID when it fails) without signing
 * it, and names its key: `sha256:<hex>` of its SubjectPublicKeyInfo, the same
 * form as `caCertHash`. The join calls this before it claims a name, so a bad
 * CSR changes nothing, and records the hash as the node's identity.
 */
export async function verifyCsr(csrPem: string): Promise<{ publicKeyHash: string }> {
  return { publicKeyHash: publicKeyHash(await verifiedCsrPublicKey(csrPem)) };
}

/** The DER SubjectPublicKeyInfo of a well-formed, correctly self-signed P-256 CSR; CSR_INVALID otherwise. */
async function verifiedCsrPublicKey(csrPem: unknown): Promise<ArrayBuffer> {
  const der = decodeSinglePem(csrPem, 'CERTIFICATE REQUEST');
  if (der === undefined) throw csrInvalid('not exactly one PEM CERTIFICATE REQUEST');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch (cause) {
    throw csrInvalid('not a PKCS#10 certificate request', cause);
  }
  const spki = csr.publicKey.rawData;
  if (!isP256PublicKey(spki)) throw csrInvalid('the key is not ECDSA P-256');
  // The library types `Algorithm` from the DOM lib, which this project does not load.
  const algorithm = csr.signatureAlgorithm as unknown as {
    name?: string;
    hash?: { name?: string };
  };
  if (algorithm.name !== 'ECDSA' || !ACCEPTED_CSR_HASHES.has(algorithm.hash?.name ?? '')) {
    throw csrInvalid('the signature is not ECDSA with SHA-2');
  }
  let verified: boolean;
  try {
    verified = await csr.verify(webCrypto);
  } catch (cause) {
    throw csrInvalid('the signature cannot be checked', cause);
  }
  if (!verified) throw csrInvalid('the signature does not verify');
  return spki;
}

/** A verified CSR: its key, and that key's identity (`sha256:<hex>` of the SPKI). */
export interface VerifiedCsr {
  publicKey: ArrayBuffer;
  publicKeyHash: string;
}

export interface CsrSigner {
  /** Checks a CSR exactly as `signCsr` does; CSR_INVALID when it fails. */
  verify(csrPem: string): Promise<VerifiedCsr>;
  /** Issues a certificate for a key `verify` accepted. */
  issue(csr: VerifiedCsr, options: IssueOptions): Promise<string>;
}

/**
 * The CA loaded once, for a server that signs many CSRs: `signCsr` parses the
 * CA and imports its key on every call, which is most of its cost.
 */
export async function loadCsrSigner(ca: ClusterCa): Promise<CsrSigner> {
  const signer = await loadCaSigner(ca);
  return {
    async verify(csrPem) {
      const publicKey = await verifiedCsrPublicKey(csrPem);
      return { publicKey, publicKeyHash: publicKeyHash(publicKey) };
    },
    issue: (csr, options) => issueCertificate(signer, csr.publicKey, validateIssueOptions(options)),
  };
}
