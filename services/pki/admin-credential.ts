/**
 * The admin credential written at `init`: a client certificate with CN
 * `admin`, O `amalgam:admins`. Unlike a node's, its key is generated here, on
 * the control plane, because the operator receives key and certificate
 * together (as kubeadm's admin.conf).
 */
import type { ClusterCa } from './ca.ts';
import { loadCaSigner } from './ca.ts';
import { adminSubject } from './identity.ts';
import { issueCertificate, validateIssueOptions } from './issue.ts';
import { generateKeyPair } from './keys.ts';

export const DEFAULT_ADMIN_VALIDITY_DAYS = 365;

export interface IssueAdminCredentialOptions {
  /** Default 365. */
  validityDays?: number;
  now?: Date;
}

export async function issueAdminCredential(
  ca: ClusterCa,
  options: IssueAdminCredentialOptions = {},
): Promise<{ certPem: string; keyPem: string }> {
  const spec = validateIssueOptions({
    ...adminSubject(),
    usages: ['client'],
    validityDays: options.validityDays ?? DEFAULT_ADMIN_VALIDITY_DAYS,
    now: options.now,
  });
  const signer = await loadCaSigner(ca);
  const { keys, keyPem } = await generateKeyPair();
  const certPem = await issueCertificate(signer, keys.publicKey, spec);
  return { certPem, keyPem };
}
