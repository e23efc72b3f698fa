/**
 * What a call through the client can fail with.
 *
 * - The server answered with a problem document: an `ApiError`, which IS an
 *   `AmalgamError` with the server's `code` and `details` (so
 *   `isAmalgamError(err, 'NAME_TAKEN')` works the same on both sides of the
 *   wire), plus the HTTP status and the request id the server logged it under.
 * - The server could not be asked, or its answer was not the API's: a
 *   `ClientError`. Its codes are the client's own; none of them is ever sent by
 *   a server, so they are not in the server's catalogue.
 */
import { AmalgamError, ERRORS, type ErrorCode } from '../core/errors.ts';

export const CLIENT_ERRORS = {
  UNAVAILABLE: 'no endpoint could be reached',
  BAD_RESPONSE: 'the server answered with something that is not the amalgam API',
  CA_DISCOVERY_FAILED: "the server's CA certificate could not be read from its TLS handshake",
} as const;

export type ClientErrorCode = keyof typeof CLIENT_ERRORS;

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  readonly details: Record<string, unknown>;

  constructor(
    code: ClientErrorCode,
    detail?: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(detail ? `${CLIENT_ERRORS[code]}: ${detail}` : CLIENT_ERRORS[code], options);
    this.name = 'ClientError';
    this.code = code;
    this.details = details;
  }
}

/** An error the server reported: the server's `AmalgamError`, rebuilt on this side. */
export class ApiError extends AmalgamError {
  /** The HTTP status the server answered with. */
  readonly status: number;
  /** The id the server logged the request under, when it sent one. */
  readonly requestId: string | undefined;

  constructor(
    code: ErrorCode,
    detail: string | undefined,
    details: Record<string, unknown>,
    status: number,
    requestId: string | undefined,
  ) {
    super(code, detail, details);
    this.name = 'ApiError';
    this.status = status;
    this.requestId = requestId;
  }
}

/** Members of an RFC 9457 problem document that are not the error's own details. */
const PROBLEM_MEMBERS = new Set([
  'type',
  'title',
  'status',
  'code',
  'detail',
  'instance',
  'requestId',
]);

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/**
 * The error a problem document describes. The server's `detail` is the
 * message of its `AmalgamError`, which starts with the catalogue's message for
 * the code; that prefix is taken off so the rebuilt error's message is the
 * server's, not the catalogue message twice.
 */
export function errorFromProblem(
  status: number,
  body: unknown,
  requestIdHeader?: string,
): ApiError | ClientError {
  const problem =
    typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const requestId =
    typeof problem.requestId === 'string' ? problem.requestId : (requestIdHeader ?? undefined);
  const { code } = problem;
  if (!isErrorCode(code)) {
    return new ClientError(
      'BAD_RESPONSE',
      `HTTP ${status} without a known error code${typeof code === 'string' ? ` (${code})` : ''}`,
      { status, code, requestId, body },
    );
  }
  const details: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(problem)) {
    if (!PROBLEM_MEMBERS.has(key)) details[key] = value;
  }
  return new ApiError(
    code,
    stripCatalogueMessage(code, problem.detail),
    details,
    status,
    requestId,
  );
}

/** The server's message without the catalogue's message for `code` in front (shared with grpc-errors.ts). */
export function stripCatalogueMessage(code: ErrorCode, detail: unknown): string | undefined {
  if (typeof detail !== 'string' || detail === '') return undefined;
  const message: string = ERRORS[code].message;
  if (detail === message) return undefined;
  if (detail.startsWith(`${message}: `)) return detail.slice(message.length + 2);
  return detail;
}
