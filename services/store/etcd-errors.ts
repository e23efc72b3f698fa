/**
 * How the etcd backend maps what the etcd3 client throws onto the error
 * catalogue, and which failures are worth another attempt.
 *
 * An error is either an answer (the server refused the request before it
 * applied: retrying cannot help) or a failure to get one (unavailable,
 * deadline, no leader, timed out, connection reset, an overloaded server).
 * Answers map to their own code at once; failures are retried, and once the
 * operation's time is up they end as NO_QUORUM.
 */
import { ClientClosedError, EtcdLeaseInvalidError, GRPCInvalidArgumentError } from 'etcd3';
import { AmalgamError, ERRORS, isAmalgamError } from '../core/errors.ts';

/** The catalogue error an answer maps to; undefined for a transient failure. */
export function definiteError(err: unknown): AmalgamError | undefined {
  if (isAmalgamError(err)) return err;
  if (err instanceof ClientClosedError) return new AmalgamError('STORE_CLOSED');
  const message = String((err as Error)?.message ?? err);
  if (err instanceof EtcdLeaseInvalidError || /requested lease not found/.test(message)) {
    return new AmalgamError('LEASE_NOT_FOUND', message);
  }
  if (/required revision has been compacted/.test(message)) {
    return new AmalgamError('WATCH_COMPACTED', message);
  }
  if (
    err instanceof GRPCInvalidArgumentError ||
    /duplicate key|too many operations|key is not provided|future revision/.test(message)
  ) {
    return new AmalgamError('INVALID_ARGUMENT', message);
  }
  return undefined;
}

/** The end of an operation whose every attempt failed without an answer. */
export function noQuorum(operation: string, attempts: number, lastError: unknown): AmalgamError {
  return new AmalgamError(
    'NO_QUORUM',
    `${operation} found no quorum after ${attempts} attempts: ${(lastError as Error)?.message}`,
    { operation, attempts },
    { cause: lastError },
  );
}

/**
 * A write that found no quorum may sit in a minority's log and commit when
 * the quorum returns: the same NO_QUORUM, with the request id that settles it.
 */
export function writeOutcomeUnknown(err: AmalgamError, requestId: string): AmalgamError {
  return new AmalgamError(
    'NO_QUORUM',
    detailOf(err),
    { ...err.details, requestId, outcome: 'unknown' },
    { cause: err.cause },
  );
}

/** The detail an AmalgamError was made with: its message without the catalogue's text. */
function detailOf(err: AmalgamError): string {
  const prefix = `${ERRORS[err.code].message}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : '';
}

/** The server's words for a revision newer than any it has. */
export function isFutureRevision(err: unknown): boolean {
  return isAmalgamError(err, 'INVALID_ARGUMENT') && /future revision/.test(err.message);
}
