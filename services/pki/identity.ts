/**
 * Who a certificate speaks for, read from its subject.
 *
 * Client certificates:
 * - node `<name>`: CN `node:<name>`, O `amalgam:nodes`;
 * - the admin credential written at init: CN `admin`, O `amalgam:admins`;
 * - user `<name>` (a person, `clusteradm user create`): CN `user:<name>` and O
 *   the role's group (`amalgam:admins`, `amalgam:operators`,
 *   `amalgam:viewers`), as Kubernetes puts groups in O. The user record
 *   (features/users) can revoke it; the role is the certificate's.
 * Server certificate: clusterd is CN `clusterd`, O `amalgam:control-plane`.
 * No node, user or admin certificate carries that subject, and clients check
 * it (clusterdServerCheck), so a node's certificate cannot pass as clusterd.
 *
 * Only the cluster CA writes these subjects, and it writes the name the
 * token-authenticated join (or an admin) decided, never one a CSR asked for.
 * So the subject can be believed only on a connection whose certificate chain
 * was verified against the cluster CA alone (`socket.authorized`). Anything
 * that is not exactly one of these shapes is no identity at all.
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { isValidNodeName, validateNodeName } from '../core/names.ts';
import { publicKeyHash } from './fingerprint.ts';

export const ADMIN_COMMON_NAME = 'admin';
export const ADMIN_ORGANIZATION = 'amalgam:admins';
export const NODE_COMMON_NAME_PREFIX = 'node:';
export const NODE_ORGANIZATION = 'amalgam:nodes';
export const USER_COMMON_NAME_PREFIX = 'user:';
export const CLUSTERD_COMMON_NAME = 'clusterd';
export const CONTROL_PLANE_ORGANIZATION = 'amalgam:control-plane';

/** The roles a person's certificate can carry (a node's role is `node`, from its subject). */
export const USER_ROLES = ['admin', 'operator', 'viewer'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** The O of a user certificate, per role. */
export const ROLE_ORGANIZATIONS: Readonly<Record<UserRole, string>> = {
  admin: ADMIN_ORGANIZATION,
  operator: 'amalgam:operators',
  viewer: 'amalgam:viewers',
};

export function isUserRole(value: unknown): value is UserRole {
  return typeof value === 'string' && (USER_ROLES as readonly string[]).includes(value);
}

/**
 * `keyHash` is `sha256:<hex>` of the certificate's SubjectPublicKeyInfo (what
 * a node record's `identity` and a user record's `identity` hold): present
 * whenever the peer certificate carried its public key.
 */
export type PeerIdentity = (
  | { kind: 'admin' }
  | { kind: 'node'; name: string }
  | { kind: 'user'; name: string; role: UserRole }
) & { keyHash?: string };

type Subject = { commonName: string; organization: string };

/**
 * The subject a node certificate gets. Node names follow the core rule (an
 * RFC 1123 DNS label); anything else is INVALID_ARGUMENT.
 */
export function nodeSubject(name: string): Subject {
  validateNodeName(name);
  return { commonName: `${NODE_COMMON_NAME_PREFIX}${name}`, organization: NODE_ORGANIZATION };
}

/** The subject of the admin credential. */
export function adminSubject(): Subject {
  return { commonName: ADMIN_COMMON_NAME, organization: ADMIN_ORGANIZATION };
}

/** The subject of user `name`'s certificate; names follow the node-name rule. */
export function userSubject(name: string, role: UserRole): Subject {
  validateNodeName(name);
  return {
    commonName: `${USER_COMMON_NAME_PREFIX}${name}`,
    organization: ROLE_ORGANIZATIONS[role],
  };
}

/** The subject of clusterd's server certificate. */
export function clusterdSubject(): Subject {
  return { commonName: CLUSTERD_COMMON_NAME, organization: CONTROL_PLANE_ORGANIZATION };
}

function subjectOf(peer: unknown): { cn: string; o: string } | undefined {
  const subject: unknown = (peer as { subject?: unknown } | null | undefined)?.subject;
  if (typeof subject !== 'object' || subject === null) return undefined;
  const { CN: cn, O: o } = subject as Record<string, unknown>;
  // Node reports an attribute that occurs more than once as an array: refused.
  if (typeof cn !== 'string' || typeof o !== 'string') return undefined;
  return { cn, o };
}

function roleOfOrganization(o: string): UserRole | undefined {
  return USER_ROLES.find((role) => ROLE_ORGANIZATIONS[role] === o);
}

function kindOf(cn: string, o: string): PeerIdentity | undefined {
  if (o === ADMIN_ORGANIZATION && cn === ADMIN_COMMON_NAME) return { kind: 'admin' };
  if (o === NODE_ORGANIZATION && cn.startsWith(NODE_COMMON_NAME_PREFIX)) {
    const name = cn.slice(NODE_COMMON_NAME_PREFIX.length);
    return isValidNodeName(name) ? { kind: 'node', name } : undefined;
  }
  const role = roleOfOrganization(o);
  if (role !== undefined && cn.startsWith(USER_COMMON_NAME_PREFIX)) {
    const name = cn.slice(USER_COMMON_NAME_PREFIX.length);
    return isValidNodeName(name) ? { kind: 'user', name, role } : undefined;
  }
  return undefined;
}

/** SPKI hashes by certificate fingerprint: a connection's certificate is parsed once. */
const keyHashes = new Map<string, string>();
const KEY_HASH_CACHE = 4096;

/**
 * `sha256:<hex>` of the certificate's DER SubjectPublicKeyInfo. Not Node's
 * `pubkey`: for an EC key that is the bare point (65 bytes), not the SPKI
 * that CSRs and records are hashed over, so the SPKI is read from `raw`.
 */
function keyHashOf(
  peer: Partial<Pick<PeerCertificate, 'raw' | 'fingerprint256'>>,
): string | undefined {
  const { raw, fingerprint256 } = peer;
  if (!Buffer.isBuffer(raw) || raw.length === 0) return undefined;
  const cached = fingerprint256 ? keyHashes.get(fingerprint256) : undefined;
  if (cached !== undefined) return cached;
  let hash: string;
  try {
    const spki = new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' });
    hash = publicKeyHash(new Uint8Array(spki).buffer);
  } catch {
    return undefined;
  }
  if (fingerprint256) {
    if (keyHashes.size >= KEY_HASH_CACHE) keyHashes.clear();
    keyHashes.set(fingerprint256, hash);
  }
  return hash;
}

/**
 * The identity of a verified peer, from `tls.TLSSocket.getPeerCertificate()`
 * (which returns `{}` when the peer sent no certificate), with `keyHash` when
 * the certificate's DER (`raw`) is there.
 */
export function identityOf(
  peer: Partial<Pick<PeerCertificate, 'subject' | 'raw' | 'fingerprint256'>> | null | undefined,
): PeerIdentity | undefined {
  const subject = subjectOf(peer);
  if (subject === undefined) return undefined;
  const identity = kindOf(subject.cn, subject.o);
  if (identity === undefined) return undefined;
  const keyHash = peer ? keyHashOf(peer) : undefined;
  if (keyHash !== undefined) identity.keyHash = keyHash;
  return identity;
}

/** True when `peer` (a server certificate) is clusterd's: CN `clusterd`, O `amalgam:control-plane`. */
export function isClusterdCertificate(
  peer: Partial<Pick<PeerCertificate, 'subject'>> | null | undefined,
): boolean {
  const subject = subjectOf(peer);
  return subject?.cn === CLUSTERD_COMMON_NAME && subject.o === CONTROL_PLANE_ORGANIZATION;
}
