/**
 * AmalgamError -> gRPC status: the catalogue's gRPC code, the message as
 * details, and the stable code and details in trailers (`amalgam-code`,
 * `amalgam-details` as JSON). Anything else is INTERNAL, logged here, with no
 * message of its own leaking to the client.
 */
import { Metadata, type ServiceError, type status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AmalgamError, ERRORS, isAmalgamError } from '../core/errors.ts';

export const CODE_KEY = 'amalgam-code';
export const DETAILS_KEY = 'amalgam-details';

export type GrpcError = Partial<ServiceError> & {
  code: status;
  details: string;
  metadata: Metadata;
};

export function toGrpcError(err: unknown, logger: Logger, method: string): GrpcError {
  let known: AmalgamError;
  if (isAmalgamError(err)) {
    known = err;
    if (known.code === 'INTERNAL') logger.error({ err, method }, 'gRPC call failed');
  } else {
    logger.error({ err, method }, 'gRPC call failed');
    known = new AmalgamError('INTERNAL');
  }
  const metadata = new Metadata();
  metadata.set(CODE_KEY, known.code);
  metadata.set(DETAILS_KEY, JSON.stringify(known.details));
  return {
    name: 'AmalgamError',
    message: known.message,
    code: known.grpc as status,
    details: known.message,
    metadata,
  };
}

/** The catalogue code a client got, from the trailers (undefined when absent or unknown). */
export function amalgamCodeOf(metadata: Metadata | undefined): keyof typeof ERRORS | undefined {
  const value = metadata?.get(CODE_KEY)[0];
  return typeof value === 'string' && Object.hasOwn(ERRORS, value)
    ? (value as keyof typeof ERRORS)
    : undefined;
}
