/**
 * Who is calling, from the TLS connection: the only source of identity on
 * REST. clusterd asks for a client certificate but does not require one (a
 * joining machine has none yet), so a certificate counts only when Node
 * verified its chain against the cluster CA (`socket.authorized`). No
 * certificate, a certificate from another CA, or a subject that is neither
 * the admin's nor a node's: anonymous.
 */
import { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { identityOf } from '../../pki/index.ts';
import type { Caller } from '../service/contracts.ts';

export const ANONYMOUS: Caller = Object.freeze({ kind: 'anonymous' }) as Caller;

export function callerFromTls(request: FastifyRequest): Caller {
  const socket = request.raw.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return ANONYMOUS;
  return identityOf(socket.getPeerCertificate()) ?? ANONYMOUS;
}
