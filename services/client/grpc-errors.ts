/**
 * A failed gRPC call, rebuilt into the client's errors (the gRPC twin of
 * `errorFromProblem`), and whether it may be failed over.
 *
 * - The trailers carry `amalgam-code`: the server's answer, an `ApiError`
 *   with that code, the `amalgam-details` JSON as details and, as `status`,
 *   the catalogue's HTTP status for the code (so `err.status` is the same
 *   whichever door the call took). Never failed over: every replica serves
 *   the same store, as with an HTTP answer on REST.
 * - No `amalgam-code` and a status that says the call did not get an answer
 *   (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, and INTERNAL/UNKNOWN, which
 *   grpc-js reports for a stream reset by a dying server): a `ClientError`
 *   UNAVAILABLE.
 * - Anything else without a code (UNIMPLEMENTED, a message that does not
 *   decode...): not the amalgam API, `ClientError` BAD_RESPONSE.
 */
import { type Metadata, status } from '@grpc/grpc-js';
import { amalgamCodeOf, DETAILS_KEY } from '../api/grpc-error-codec.ts';
import { ERRORS } from '../core/errors.ts';
import { ApiError, ClientError, stripCatalogueMessage } from './errors.ts';

/** What grpc-js rejects a call with (a ServiceError), as far as it is read here. */
export interface GrpcFailure {
  code?: number;
  details?: string;
  message?: string;
  metadata?: Metadata;
}

const NO_ANSWER = new Set<number>([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.CANCELLED,
  status.INTERNAL,
  status.UNKNOWN,
]);

/**
 * The only failure that certainly never reached a server: grpc-js's load
 * balancer failed the call because its channel has no connection (connect
 * refused, TLS handshake failed...), before the call was given to any
 * transport. Its details always start with this text (grpc-js
 * load-balancer-pick-first.js and picker.js).
 */
const NOT_SENT_PREFIX = 'No connection established';

export interface Classified {
  error: ApiError | ClientError;
  /** No answer came: another endpoint may be asked (for a read, or a write that was not sent). */
  transportFailure: boolean;
  /** The call certainly never left this client. */
  notSent: boolean;
}

function detailsOf(metadata: Metadata | undefined): Record<string, unknown> {
  const raw = metadata?.get(DETAILS_KEY)[0];
  if (typeof raw !== 'string') return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

export function classifyGrpcFailure(
  err: GrpcFailure,
  context: Record<string, unknown> = {},
): Classified {
  const code = amalgamCodeOf(err.metadata);
  if (code !== undefined) {
    return {
      error: new ApiError(
        code,
        stripCatalogueMessage(code, err.details),
        detailsOf(err.metadata),
        ERRORS[code].http,
        undefined,
      ),
      transportFailure: false,
      notSent: false,
    };
  }
  const grpcCode = typeof err.code === 'number' ? err.code : status.UNKNOWN;
  const text = err.details ?? err.message ?? '';
  const details = { ...context, grpcCode: status[grpcCode] ?? grpcCode };
  if (NO_ANSWER.has(grpcCode)) {
    const notSent = grpcCode === status.UNAVAILABLE && text.startsWith(NOT_SENT_PREFIX);
    return {
      error: new ClientError('UNAVAILABLE', `${status[grpcCode]}: ${text}`, {
        ...details,
        sent: !notSent,
      }),
      transportFailure: true,
      notSent,
    };
  }
  return {
    error: new ClientError(
      'BAD_RESPONSE',
      `gRPC ${status[grpcCode] ?? grpcCode} without an amalgam-code: ${text}`,
      details,
    ),
    transportFailure: false,
    notSent: false,
  };
}

/** The client's error for a failed gRPC call. */
export function errorFromGrpc(err: GrpcFailure): ApiError | ClientError {
  return classifyGrpcFailure(err).error;
}
