/**
 * Input rules shared by both store backends, so a request that one backend
 * refuses the other refuses too, with the same code and field name.
 */
import { AmalgamError } from '../core/errors.ts';
import type { Op, TxnRequest } from './store.ts';

/** Keys starting with NUL are the store's own (e.g. txn markers of the etcd backend). */
export const INTERNAL_PREFIX = '\0';
/** Inside etcd's default limits (1.5 MiB per request, 128 operations per txn). */
export const MAX_KEY_BYTES = 4096;
export const MAX_VALUE_BYTES = 1024 * 1024;
export const MAX_TXN_OPS = 128;

export function validateKey(key: unknown, field: string): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new AmalgamError('INVALID_ARGUMENT', `${field}: a non-empty string is required`, {
      field,
    });
  }
  if (key.startsWith(INTERNAL_PREFIX)) {
    throw new AmalgamError('INVALID_ARGUMENT', `${field}: keys starting with NUL are reserved`, {
      field,
    });
  }
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new AmalgamError('INVALID_ARGUMENT', `${field}: longer than ${MAX_KEY_BYTES} bytes`, {
      field,
    });
  }
}

export function validateLeaseTtl(ttlSeconds: unknown): asserts ttlSeconds is number {
  if (
    typeof ttlSeconds !== 'number' ||
    !Number.isInteger(ttlSeconds) ||
    ttlSeconds < 1 ||
    ttlSeconds > 9e9
  ) {
    throw new AmalgamError('INVALID_ARGUMENT', 'ttlSeconds: an integer >= 1 is required', {
      field: 'ttlSeconds',
    });
  }
}

function validateOps(ops: readonly Op[], field: string): void {
  const written = new Set<string>();
  ops.forEach((op, i) => {
    const at = `${field}[${i}]`;
    validateKey(op.key, `${at}.key`);
    if (op.type === 'put') {
      if (typeof op.value !== 'string' || Buffer.byteLength(op.value) > MAX_VALUE_BYTES) {
        throw new AmalgamError(
          'INVALID_ARGUMENT',
          `${at}.value: a string of at most 1 MiB is required`,
          {
            field: `${at}.value`,
          },
        );
      }
    } else if (op.type !== 'delete') {
      throw new AmalgamError('INVALID_ARGUMENT', `${at}.type: must be put or delete`, {
        field: `${at}.type`,
      });
    }
    // Like etcd: one branch may not write the same key twice.
    if (written.has(op.key)) {
      throw new AmalgamError('INVALID_ARGUMENT', `${at}.key: duplicate key in one branch`, {
        field: `${at}.key`,
      });
    }
    written.add(op.key);
  });
}

const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function validateTxn(request: TxnRequest): void {
  const onFailure = request.onFailure ?? [];
  if (
    request.requestId !== undefined &&
    (typeof request.requestId !== 'string' || !REQUEST_ID.test(request.requestId))
  ) {
    throw new AmalgamError('INVALID_ARGUMENT', 'requestId: 1 to 64 of [A-Za-z0-9_-]', {
      field: 'requestId',
    });
  }
  if (request.compares.length + request.onSuccess.length + onFailure.length > MAX_TXN_OPS) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `txn: more than ${MAX_TXN_OPS} compares and operations`,
      {
        field: 'txn',
      },
    );
  }
  request.compares.forEach((c, i) => {
    validateKey(c.key, `compares[${i}].key`);
    const ok = c.target === 'value' ? typeof c.value === 'string' : Number.isInteger(c.value);
    if (!ok || !['==', '!=', '<', '>'].includes(c.op)) {
      throw new AmalgamError('INVALID_ARGUMENT', `compares[${i}]: invalid target, op or value`, {
        field: `compares[${i}]`,
      });
    }
  });
  validateOps(request.onSuccess, 'onSuccess');
  validateOps(onFailure, 'onFailure');
}
