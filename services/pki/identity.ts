/**
 * Who a client certificate speaks for, read from its subject.
 *
 * Node certificates carry CN `node:<name>` and O `amalgam:nodes`; the admin
 * credential carries CN `admin` and O `amalgam:admins`. Only the cluster CA
 * writes these subjects, and it writes the name the token-authenticated join
 * decided, never one a CSR asked for. So the subject can be believed only on
 * a connection whose certificate chain was verified against the cluster CA
 * alone: a TLS server with `requestCert: true, rejectUnauthorized: true,
 * ca: <cluster CA>` (then `socket.authorized` is true). Anything that is not
 * exactly one of the two shapes is no identity at all.
 */
import type { PeerCertificate } from 'node:tls';
import { isValidNodeName, validateNodeName } from '../core/names.ts';

export const ADMIN_COMMON_NAME = 'admin';
export const ADMIN_ORGANIZATION = 'amalgam:admins';
export const NODE_COMMON_NAME_PREFIX = 'node:';
export const NODE_ORGANIZATION = 'amalgam:nodes';

export type PeerIdentity = { kind: 'admin' } | { kind: 'node'; name: string };

/**
 * The subject a node certificate gets. Node names follow the core rule (an
 * RFC 1123 DNS label); anything else is INVALID_ARGUMENT.
 */
export function nodeSubject(name: string): { commonName: string; organization: string } {
  validateNodeName(name);
  return { commonName: `${NODE_COMMON_NAME_PREFIX}${name}`, organization: NODE_ORGANIZATION };
}

/** The subject of the admin credential. */
export function adminSubject(): { commonName: string; organization: string } {
  return { commonName: ADMIN_COMMON_NAME, organization: ADMIN_ORGANIZATION };
}

/**
 * The identity of a verified peer, from `tls.TLSSocket.getPeerCertificate()`
 * (which returns `{}` when the peer sent no certificate). Node reports an
 * attribute that occurs more than once as an array; such subjects are refused.
 */
export function identityOf(
  peer: Partial<Pick<PeerCertificate, 'subject'>> | null | undefined,
): PeerIdentity | undefined {
  const subject: unknown = peer?.subject;
  if (typeof subject !== 'object' || subject === null) return undefined;
  const { CN: commonName, O: organization } = subject as Record<string, unknown>;
  if (typeof commonName !== 'string' || typeof organization !== 'string') return undefined;
  if (organization === ADMIN_ORGANIZATION && commonName === ADMIN_COMMON_NAME) {
    return { kind: 'admin' };
  }
  if (organization === NODE_ORGANIZATION && commonName.startsWith(NODE_COMMON_NAME_PREFIX)) {
    const name = commonName.slice(NODE_COMMON_NAME_PREFIX.length);
    return isValidNodeName(name) ? { kind: 'node', name } : undefined;
  }
  return undefined;
}
