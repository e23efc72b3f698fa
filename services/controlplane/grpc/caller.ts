/**
 * Who is calling, from the TLS connection, as on REST (rest/identity.ts).
 *
 * grpc-js (>= 1.10) exposes the peer through `call.getAuthContext()`: its
 * `sslPeerCertificate` is set only when the TLS socket is `authorized`, i.e.
 * the client certificate's chain verified against the cluster CA (the only
 * CA the server's credentials trust). No certificate, a certificate from
 * another CA, or a subject that is neither the admin's nor a node's:
 * anonymous.
 */
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { identityOf } from '../../pki/index.ts';
import type { Caller } from '../service/contracts.ts';

export const ANONYMOUS: Caller = Object.freeze({ kind: 'anonymous' }) as Caller;

export function callerFromCall(
  call: Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext'>,
): Caller {
  const context = call.getAuthContext?.();
  const peer = context?.sslPeerCertificate;
  if (!peer) return ANONYMOUS;
  return identityOf(peer) ?? ANONYMOUS;
}
