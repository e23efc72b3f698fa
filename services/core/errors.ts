/**
 * The error catalogue: every error amalgam reports, declared once.
 *
 * A code is the stable contract (tests and clients match on it, never on the
 * message). Each entry carries the HTTP status, the gRPC status code and
 * whether retrying the same request may succeed. `test/unit/core/errors.test.ts`
 * fails when a code is not documented in the README.
 */

/** gRPC status codes (numeric values from the gRPC spec). */
export const GrpcStatus = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

interface ErrorSpec {
  http: number;
  grpc: number;
  retryable: boolean;
  message: string;
}

export const ERRORS = {
  NO_QUORUM: {
    http: 503,
    grpc: GrpcStatus.UNAVAILABLE,
    retryable: true,
    message:
      'the store cannot reach a quorum; nothing was acknowledged (a write may still apply when the quorum returns: resend it with details.requestId to settle it)',
  },
  WATCH_COMPACTED: {
    http: 410,
    grpc: GrpcStatus.OUT_OF_RANGE,
    retryable: false,
    message: 'the requested revision was compacted; re-list and watch from the current revision',
  },
  LEASE_NOT_FOUND: {
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
    retryable: false,
    message: 'the lease does not exist or has expired',
  },
  INVALID_ARGUMENT: {
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    retryable: false,
    message: 'a field of the request is not valid',
  },
  STORE_CLOSED: {
    http: 503,
    grpc: GrpcStatus.UNAVAILABLE,
    retryable: false,
    message: 'the store was closed',
  },
  WAL_CORRUPT: {
    http: 500,
    grpc: GrpcStatus.DATA_LOSS,
    retryable: false,
    message: 'the write-ahead log is damaged before its last record; refusing to start',
  },
  DATA_DIR_LOCKED: {
    http: 500,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    retryable: false,
    message: 'another process holds the data directory',
  },
  // 409, not 507: 507 Insufficient Storage is WebDAV's and, as a 5xx, tells
  // generic clients, proxies and alerts that the server is at fault and a retry
  // may help. Here the server is fine; the request conflicts with the cluster's
  // current state (not enough contributed memory) and fails again until that
  // state changes (a node joins, a segment is freed). gRPC has an exact match.
  RANGE_EXHAUSTED: {
    http: 409,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: false,
    message: 'not enough free network memory for the request',
  },
  NODE_NOT_FOUND: {
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
    retryable: false,
    message: 'the node does not exist',
  },
  SEGMENT_NOT_FOUND: {
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
    retryable: false,
    message: 'the segment does not exist',
  },
  TOKEN_INVALID: {
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    retryable: false,
    message: 'the bootstrap token secret does not match',
  },
  TOKEN_MALFORMED: {
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    retryable: false,
    message: 'the bootstrap token is not of the form [a-z0-9]{6}.[a-z0-9]{16}',
  },
  TOKEN_NOT_FOUND: {
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    retryable: false,
    message: 'the bootstrap token does not exist (never created, or deleted)',
  },
  TOKEN_EXPIRED: {
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    retryable: false,
    message: 'the bootstrap token has expired',
  },
  UNAUTHENTICATED: {
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    retryable: false,
    message: 'this call needs a client certificate signed by the cluster CA',
  },
  FORBIDDEN: {
    http: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
    retryable: false,
    message:
      'the caller may not do this (nodes change only their own objects; admin calls need the admin credential)',
  },
  NODE_IN_USE: {
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    retryable: false,
    message: 'the node still holds segments; free them before removing the node',
  },
  CSR_INVALID: {
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    retryable: false,
    message: 'the certificate signing request is malformed or its signature does not verify',
  },
  CONTENDED: {
    http: 503,
    grpc: GrpcStatus.ABORTED,
    retryable: true,
    message: 'too many concurrent writers on the same object; nothing was changed, retry',
  },
  NOT_FOUND: {
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
    retryable: false,
    message: 'no such route or resource',
  },
  PAYLOAD_TOO_LARGE: {
    http: 413,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: false,
    message: 'the request body is larger than the limit',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    http: 415,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    retryable: false,
    message: 'the request body must be application/json',
  },
  INTERNAL: {
    http: 500,
    grpc: GrpcStatus.INTERNAL,
    retryable: false,
    message: 'an unexpected error; it was logged with the request id',
  },
  NAME_TAKEN: {
    http: 409,
    grpc: GrpcStatus.ALREADY_EXISTS,
    retryable: false,
    message: 'the name is already taken by another object',
  },
  ADDRESS_UNMAPPED: {
    http: 400,
    grpc: GrpcStatus.OUT_OF_RANGE,
    retryable: false,
    message: 'no node owns this address of the network memory space',
  },
  LOCK_TIMEOUT: {
    http: 409,
    grpc: GrpcStatus.ABORTED,
    retryable: true,
    message: 'the network-memory lock is held by another owner; it was not acquired in time',
  },
  LOCK_NOT_HELD: {
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    retryable: false,
    message:
      'the network-memory lock is not held by this owner (released, or expired and taken over)',
  },
  DEVICE_NOT_FOUND: {
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
    retryable: false,
    message: 'the node has no such device in its inventory',
  },
  PROCESS_NOT_FOUND: {
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
    retryable: false,
    message: 'no process record has this cluster PID',
  },
  PID_SPACE_EXHAUSTED: {
    http: 409,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: false,
    message: 'the cluster PID space has no block of the size asked for left',
  },
  NO_PLACEMENT: {
    http: 409,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: true,
    message: 'no Ready node can take the process (labels, pinned node not Ready)',
  },
  STALE_EPOCH: {
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    retryable: false,
    message:
      "the report carries an older epoch than the process record: this copy's home has changed; stop it",
  },
  PROCESS_STATE_CONFLICT: {
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    retryable: false,
    message: 'the process is not in a state that allows this (details.state)',
  },
  PROCESS_NOT_MIGRATABLE: {
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    retryable: false,
    message: 'the process was started with --migratable never',
  },
  // 401 like every other credential failure: the certificate itself is no
  // longer good (its node was removed, or its name now belongs to another key);
  // the fix is a new credential, not other permissions.
  CREDENTIAL_REVOKED: {
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    retryable: false,
    message:
      'the credential was revoked (its node was removed or its user revoked, or its name now belongs to another key); a new credential is needed',
  },
  TOKEN_EXHAUSTED: {
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    retryable: false,
    message: 'the bootstrap token has been used as many times as its --max-uses allows',
  },
  RATE_LIMITED: {
    http: 429,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: true,
    message: 'too many requests from this source address; retry after details.retryAfterSeconds',
  },
  // Answered by the REST door itself when a request (headers and body) did not
  // arrive within limits.requestTimeoutMs; the connection is closed after it.
  REQUEST_TIMEOUT: {
    http: 408,
    grpc: GrpcStatus.DEADLINE_EXCEEDED,
    retryable: true,
    message:
      'the request did not arrive in time (limits.requestTimeoutMs); the connection was closed',
  },
  // 429: the caller holds too many open watches right now; closing one (or
  // waiting for another caller's to end, for the server-wide cap) makes room.
  TOO_MANY_WATCHES: {
    http: 429,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: true,
    message:
      'too many open watches (details.limit: per caller or in total); close one, or re-use one watch for several prefixes',
  },
  // Sent on an open watch (after the 200 over REST). Not a compaction: the
  // history is still there, but replaying a backlog this client could not
  // drain would only overflow again. Re-list, then watch from the list.
  WATCH_SLOW_CONSUMER: {
    http: 429,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: false,
    message:
      'the watch was cut: its client read too slowly and its queue overflowed; re-list, then watch from the list revision',
  },
  // 403 as Kubernetes answers an exceeded ResourceQuota: a retry does not help
  // (PID blocks are never given back) until the owner frees something or an
  // admin raises the quota. 429 would tell clients to back off and retry.
  QUOTA_EXCEEDED: {
    http: 403,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: false,
    message:
      'the owner is at its quota (details.quota, details.limit, details.current); free something or ask an admin to raise it',
  },
  CHECKPOINT_TOO_LARGE: {
    http: 413,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    retryable: false,
    message: "the checkpoint is larger than the receiving agent's processes.maxCheckpointBytes",
  },
  ROOT_NOT_ALLOWED: {
    http: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
    retryable: false,
    message:
      'the process would run as root: the node must allow it (processes.allowRoot) and an admin must ask',
  },
  USER_UNKNOWN: {
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    retryable: false,
    message: 'the node has no such user to run the process as (its passwd database)',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class AmalgamError extends Error {
  readonly code: ErrorCode;
  readonly http: number;
  readonly grpc: number;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    detail?: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    const spec: ErrorSpec = ERRORS[code];
    super(detail ? `${spec.message}: ${detail}` : spec.message, options);
    this.name = 'AmalgamError';
    this.code = code;
    this.http = spec.http;
    this.grpc = spec.grpc;
    this.retryable = spec.retryable;
    this.details = details;
  }
}

export function isAmalgamError(err: unknown, code?: ErrorCode): err is AmalgamError {
  return err instanceof AmalgamError && (code === undefined || err.code === code);
}
