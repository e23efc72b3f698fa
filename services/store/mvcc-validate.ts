/**
 * The embedded state machine's input checks. They run before a command
 * changes anything, so a command applies whole or not at all. The rules both
 * backends share live in validate.ts; these add what the etcd server itself
 * checks (and the etcd backend therefore learns from the server).
 */
import { AmalgamError } from '../core/errors.ts';
import type { Op, TxnRequest } from './store.ts';
import { INTERNAL_PREFIX, validateTxn as validateSharedTxnRules } from './validate.ts';

const COMPARE_TARGETS = new Set(['value', 'version', 'createRevision', 'modRevision']);
const LEASE_ID = /^[1-9][0-9]{0,18}$/;

/**
 * The checks made before a transaction reaches the state: its shape, the
 * rules both backends share (validate.ts), plus the one the etcd server
 * itself adds: a put may not fall inside a range deleted by the same branch.
 */
export function validateMvccTxn(request: TxnRequest): void {
  validateTxnShape(request);
  request.compares.forEach((compare, index) => {
    if (!COMPARE_TARGETS.has(compare.target)) {
      invalid(`compares[${index}].target is not valid`, { field: `compares[${index}].target` });
    }
  });
  validateSharedTxnRules(request);
  validateBranch(request.onSuccess, 'onSuccess');
  validateBranch(request.onFailure ?? [], 'onFailure');
}

/** Arrays of objects where arrays of objects belong (a logged command may come from anywhere). */
function validateTxnShape(request: TxnRequest): void {
  if (typeof request !== 'object' || request === null) invalid('txn must be an object');
  if (!Array.isArray(request.compares)) invalid('compares must be an array', { field: 'compares' });
  if (!Array.isArray(request.onSuccess)) {
    invalid('onSuccess must be an array', { field: 'onSuccess' });
  }
  if (request.onFailure !== undefined && !Array.isArray(request.onFailure)) {
    invalid('onFailure must be an array', { field: 'onFailure' });
  }
  for (const [field, ops] of [
    ['compares', request.compares],
    ['onSuccess', request.onSuccess],
    ['onFailure', request.onFailure ?? []],
  ] as const) {
    ops.forEach((item: unknown, index: number) => {
      if (typeof item !== 'object' || item === null) {
        invalid(`${field}[${index}] must be an object`, { field: `${field}[${index}]` });
      }
    });
  }
}

function validateBranch(ops: readonly Op[], branch: string): void {
  const deletes: Extract<Op, { type: 'delete' }>[] = [];
  ops.forEach((op, index) => {
    const field = `${branch}[${index}]`;
    if (op.type === 'put') {
      if (op.lease !== undefined) requireLeaseId(op.lease, `${field}.lease`);
    } else {
      if (op.prefix !== undefined && typeof op.prefix !== 'boolean') {
        invalid(`${field}.prefix must be a boolean`, { field: `${field}.prefix` });
      }
      deletes.push(op);
    }
  });
  for (const op of ops) {
    if (op.type !== 'put') continue;
    for (const deletion of deletes) {
      if (deletion.prefix ? op.key.startsWith(deletion.key) : op.key === deletion.key) {
        invalid(`${branch} both puts and deletes key ${op.key}`, { field: branch });
      }
    }
  }
}

export function requireLeaseId(id: unknown, field = 'lease'): void {
  if (typeof id !== 'string' || !LEASE_ID.test(id)) {
    invalid(`${field} must be a lease id (decimal digits)`, { field });
  }
}

/** A range or watch prefix: any string ('' is every key) outside the reserved keys. */
export function validatePrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') invalid('prefix must be a string', { field: 'prefix' });
  if (prefix.startsWith(INTERNAL_PREFIX)) {
    invalid('prefix: keys starting with NUL are reserved', { field: 'prefix' });
  }
}

export function invalid(detail: string, details: Record<string, unknown> = {}): never {
  throw new AmalgamError('INVALID_ARGUMENT', detail, details);
}
