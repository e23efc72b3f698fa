/**
 * Who may do what on the agent's endpoint (transfer.ts), as pure functions.
 *
 * The TLS server verified the peer's chain against the cluster CA; here the
 * subject says who it is and the peer identities say whether that identity
 * still counts:
 * - `node:<name>` (O amalgam:nodes): a node, accepted only while the peer
 *   identities allow its name with the key of the certificate presented
 *   (a removed node, or an old key for a re-joined name: CREDENTIAL_REVOKED);
 * - `admin` (O amalgam:admins): the cluster admin;
 * - `user:<name>` with O amalgam:admins, amalgam:operators or amalgam:viewers: a person.
 *
 * Checkpoints come only from nodes. A process's logs are read by admins and
 * operators, and by the node that ran it (this node: the log lives here);
 * viewers and other members are refused.
 */
import type { ErrorCode } from '../../core/errors.ts';

/** The identities the cluster still accepts (services/agent/peer-identities.ts implements it). */
export interface PeerIdentities {
  /** Whether a certificate of `commonName` with the key `keyHash` (`sha256:<hex>` of its SPKI) counts. */
  allows(commonName: string, keyHash: string): boolean;
}

/** Until the cluster's identities are wired in: every certificate the CA signed counts. */
export const EVERY_SIGNED_PEER: PeerIdentities = { allows: () => true };

export type Role = 'admin' | 'operator' | 'viewer';

export type EndpointPeer =
  | { kind: 'node'; name: string; commonName: string }
  | { kind: 'admin'; commonName: string }
  | { kind: 'user'; name: string; role: Role; commonName: string };

const USER_ROLES: Record<string, Role> = {
  'amalgam:admins': 'admin',
  'amalgam:operators': 'operator',
  'amalgam:viewers': 'viewer',
};
const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;

/** The peer a verified certificate subject names, or null for no identity of ours. */
export function peerOfSubject(subject: unknown): EndpointPeer | null {
  if (typeof subject !== 'object' || subject === null) return null;
  const { CN: cn, O: org } = subject as Record<string, unknown>;
  if (typeof cn !== 'string' || typeof org !== 'string') return null;
  if (cn.startsWith('node:') && org === 'amalgam:nodes') {
    const name = cn.slice(5);
    return NAME.test(name) ? { kind: 'node', name, commonName: cn } : null;
  }
  if (cn === 'admin' && org === 'amalgam:admins') return { kind: 'admin', commonName: cn };
  const role = USER_ROLES[org];
  if (cn.startsWith('user:') && role && NAME.test(cn.slice(5))) {
    return { kind: 'user', name: cn.slice(5), role, commonName: cn };
  }
  return null;
}

export type Access = { ok: true } | { ok: false; status: number; code: ErrorCode; why: string };

const OK: Access = { ok: true };

/** Node certificates count only while the cluster still knows them with this key. */
export function checkIdentity(
  peer: EndpointPeer,
  keyHash: string,
  identities: PeerIdentities,
): Access {
  if (peer.kind !== 'node' || identities.allows(peer.commonName, keyHash)) return OK;
  return {
    ok: false,
    status: 401,
    code: 'CREDENTIAL_REVOKED',
    why: `${peer.commonName} with this key is no longer a member of the cluster`,
  };
}

export function mayPushCheckpoint(peer: EndpointPeer): Access {
  return peer.kind === 'node'
    ? OK
    : { ok: false, status: 403, code: 'FORBIDDEN', why: 'checkpoints come only from nodes' };
}

/** `here`: this agent's node, where the log was written. */
export function mayReadLogs(peer: EndpointPeer, here: string): Access {
  if (peer.kind === 'admin') return OK;
  if (peer.kind === 'user' && (peer.role === 'admin' || peer.role === 'operator')) return OK;
  if (peer.kind === 'node' && peer.name === here) return OK;
  return {
    ok: false,
    status: 403,
    code: 'FORBIDDEN',
    why: 'logs are read by admins, operators and the node that ran the process',
  };
}
