/**
 * Who is calling, from the TLS connection, as on REST (rest/identity.ts).
 *
 * grpc-js (>= 1.10) exposes the peer through `call.getAuthContext()`: its
 * `sslPeerCertificate` is set only when the TLS socket is `authorized`, i.e.
 * the client certificate's chain verified against the cluster CA (the only
 * CA the server's credentials trust). No certificate, a certificate from
 * another CA, or a subject that is neither the admin's nor a node's:
 * anonymous. A certificate whose key is no longer bound to its subject is
 * CREDENTIAL_REVOKED (service/credentials.ts).
 */
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { identityOf } from '../../pki/index.ts';
import type { Caller, CredentialVerifier } from '../service/contracts.ts';

export const ANONYMOUS: Caller = Object.freeze({ kind: 'anonymous' }) as Caller;

export async function callerFromCall(
  call: Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext'>,
  credentials: CredentialVerifier,
): Promise<Caller> {
  const context = call.getAuthContext?.();
  const peer = context?.sslPeerCertificate;
  if (!peer) return ANONYMOUS;
  const caller = identityOf(peer);
  if (caller === undefined) return ANONYMOUS;
  return credentials.verify(caller, caller.keyHash);
}

/** The client's address from grpc-js's `call.getPeer()` (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`). */
export function peerAddress(peer: string): string {
  const bare = peer.replace(/^(ipv4|ipv6|unix):/, '');
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(bare);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const colon = bare.lastIndexOf(':');
  return colon > 0 && bare.indexOf(':') === colon ? bare.slice(0, colon) : bare;
}
