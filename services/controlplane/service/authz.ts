/**
 * The authorization rules, applied by the service layer so that REST and
 * gRPC enforce exactly the same ones.
 */

import { AmalgamError } from '../../core/errors.ts';
import type { Caller } from './contracts.ts';

/** Any cluster member (a node) or the admin. */
export function requireMember(caller: Caller): void {
  if (caller.kind === 'anonymous') throw new AmalgamError('UNAUTHENTICATED');
}

export function requireAdmin(caller: Caller): void {
  requireMember(caller);
  if (caller.kind !== 'admin') throw new AmalgamError('FORBIDDEN', 'admin credential required');
}

/** The node `name` itself, or the admin. */
export function requireSelfOrAdmin(caller: Caller, name: string): void {
  requireMember(caller);
  if (caller.kind === 'node' && caller.name !== name) {
    throw new AmalgamError('FORBIDDEN', `node ${caller.name} may not change node ${name}`);
  }
}

/** The node `name` itself: not even the admin heartbeats for a node. */
export function requireSelf(caller: Caller, name: string): void {
  requireMember(caller);
  if (caller.kind !== 'node' || caller.name !== name) {
    throw new AmalgamError('FORBIDDEN', `only node ${name} may do this`);
  }
}

/** Name recorded as the owner of what a caller creates. */
export function ownerName(caller: Caller): string {
  return caller.kind === 'node' ? `node:${caller.name}` : 'admin';
}
