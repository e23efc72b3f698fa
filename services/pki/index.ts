/**
 * The cluster's X.509 material, as a library: no network, no server. ECDSA
 * P-256 keys, SHA-256 signatures, PEM in and out (everything produced here
 * loads in Node's `tls`).
 */
export {
  DEFAULT_ADMIN_VALIDITY_DAYS,
  type IssueAdminCredentialOptions,
  issueAdminCredential,
} from './admin-credential.ts';
export {
  type ClusterCa,
  type CreateClusterCaOptions,
  createClusterCa,
  DEFAULT_CA_COMMON_NAME,
  DEFAULT_CA_VALIDITY_DAYS,
} from './ca.ts';
export { type CreateKeyAndCsrOptions, createKeyAndCsr, type KeyAndCsr } from './csr.ts';
export {
  createEtcdCa,
  DEFAULT_ETCD_CERT_VALIDITY_DAYS,
  ETCD_CA_COMMON_NAME,
  ETCD_CLUSTERD_CLIENT_NAME,
  ETCD_ORGANIZATION,
  type EtcdCertKind,
  type EtcdCertRequest,
  type EtcdCredential,
  etcdMemberAltNames,
  issueEtcdCredential,
} from './etcd-certs.ts';
export { caCertHash, publicKeyHash, verifyCaCertHash } from './fingerprint.ts';
export {
  ADMIN_COMMON_NAME,
  ADMIN_ORGANIZATION,
  adminSubject,
  CLUSTERD_COMMON_NAME,
  CONTROL_PLANE_ORGANIZATION,
  clusterdSubject,
  identityOf,
  isClusterdCertificate,
  isUserRole,
  NODE_COMMON_NAME_PREFIX,
  NODE_ORGANIZATION,
  nodeSubject,
  type PeerIdentity,
  ROLE_ORGANIZATIONS,
  USER_COMMON_NAME_PREFIX,
  USER_ROLES,
  type UserRole,
  userSubject,
} from './identity.ts';
export type { CertificateUsage, IssueOptions } from './issue.ts';
export { checkClusterdIdentity } from './server-identity.ts';
export { type CsrSigner, loadCsrSigner, signCsr, type VerifiedCsr, verifyCsr } from './sign-csr.ts';
export { hashTokenSecret, TOKEN_SECRET_PATTERN, verifyTokenSecret } from './tokens-hash.ts';
