/**
 * What the REST and gRPC transports share about a list of equivalent
 * endpoints (clusterd replicas): the order they are tried in, and the two
 * errors of a call that got no answer.
 */
import { ClientError } from './errors.ts';

/**
 * Endpoints are tried from the one that answered last, so a dead first
 * replica costs one failover, not one per call.
 */
export class FailoverOrder {
  private preferred = 0;

  constructor(private readonly count: number) {}

  /** Every endpoint index, the preferred one first. */
  indices(): number[] {
    return Array.from({ length: this.count }, (_, i) => (this.preferred + i) % this.count);
  }

  /** The endpoint a single-attempt call (a stream) goes to. */
  current(): number {
    return this.preferred;
  }

  /** `index` answered (even with an error): start there next time. */
  answered(index: number): void {
    this.preferred = index;
  }

  /** `index` failed without an answer: the next call starts after it, unless another answered since. */
  passOver(index: number): void {
    if (this.preferred === index) this.preferred = (index + 1) % this.count;
  }
}

export interface EndpointFailure {
  endpoint: string;
  error: string;
}

/** No endpoint answered: UNAVAILABLE listing each endpoint's failure. */
export function noEndpointAnswered(
  failures: EndpointFailure[],
  details: Record<string, unknown>,
): ClientError {
  return new ClientError(
    'UNAVAILABLE',
    failures.map((f) => `${f.endpoint}: ${f.error}`).join('; '),
    { endpoints: failures, ...details },
  );
}

/** A write that failed after it was sent: it may or may not have been applied, the caller decides. */
export function failedAfterSent(
  operation: string,
  endpoint: string,
  reason: string,
  details: Record<string, unknown>,
  cause: unknown,
): ClientError {
  return new ClientError(
    'UNAVAILABLE',
    `${operation} to ${endpoint} failed after it was sent (${reason}); it may or may not have been applied`,
    { ...details, sent: true },
    { cause },
  );
}

/** Refuses an empty endpoint list before anything is opened. */
export function requireEndpoints(endpoints: unknown): void {
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw new ClientError('UNAVAILABLE', 'no endpoints were given');
  }
}
