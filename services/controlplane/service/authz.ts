/**
 * Applying the permission table (permissions.ts). The service layer calls
 * `authorize` first thing in every method, so REST and gRPC enforce exactly
 * the same rules; a refusal is FORBIDDEN with a message naming the caller and
 * the operation (the doors log it).
 */
import { AmalgamError } from '../../core/errors.ts';
import type { Caller } from './contracts.ts';
import {
  ACT_ON_ANY,
  type OperationId,
  PERMISSIONS,
  type Permission,
  type Role,
} from './permissions.ts';

/** The caller's role, or undefined for an anonymous caller. */
export function roleOf(caller: Caller): Role | undefined {
  switch (caller.kind) {
    case 'admin':
      return 'admin';
    case 'user':
      return caller.role;
    case 'node':
      return 'node';
    default:
      return undefined;
  }
}

/** How logs and messages name a caller: `admin`, `node:a`, `user:bob`. */
export function ownerName(caller: Caller): string {
  if (caller.kind === 'node') return `node:${caller.name}`;
  if (caller.kind === 'user') return `user:${caller.name}`;
  return caller.kind;
}

function describe(caller: Caller): string {
  return caller.kind === 'user' ? `${caller.role} ${ownerName(caller)}` : ownerName(caller);
}

/** True when the table lets `caller` do `operation` (about node `target`, for self rules). */
export function isAllowed(caller: Caller, operation: OperationId, target?: string): boolean {
  const rule: Permission = PERMISSIONS[operation];
  if (rule.open === 'anyone') return true;
  const role = roleOf(caller);
  if (role === undefined) return false;
  if (rule.roles.includes(role)) return true;
  return rule.nodeSelf === true && caller.kind === 'node' && caller.name === target;
}

/**
 * Throws UNAUTHENTICATED for an anonymous caller of a secured operation and
 * FORBIDDEN when the table does not allow it. `target`: the node the call is
 * about, for operations a node may do only on itself.
 */
export function authorize(caller: Caller, operation: OperationId, target?: string): void {
  if (isAllowed(caller, operation, target)) return;
  if (caller.kind === 'anonymous') throw new AmalgamError('UNAUTHENTICATED');
  const rule: Permission = PERMISSIONS[operation];
  if (rule.nodeSelf === true && caller.kind === 'node' && target !== undefined) {
    throw new AmalgamError(
      'FORBIDDEN',
      `node ${caller.name} may not ${operation} for node ${target}: a node acts only on itself`,
    );
  }
  const allowed = [...rule.roles, ...(rule.nodeSelf ? ['the node itself'] : [])].join(', ');
  throw new AmalgamError(
    'FORBIDDEN',
    `${describe(caller)} may not ${operation} (allowed: ${allowed})`,
  );
}

/** Whether `caller` acts on what others own (kill any process, free any segment). */
export function actsOnAnything(caller: Caller): boolean {
  const role = roleOf(caller);
  return role !== undefined && ACT_ON_ANY.includes(role);
}
