/**
 * What a gRPC method is, the twin of rest/route.ts: map the decoded request
 * to the contract's request, call ONE service function, map the result.
 * Permissions and validation are the service layer's (the same for REST and
 * gRPC); the proto types only decide the shapes. Each feature's `*-grpc.ts`
 * holds its methods; grpc/handlers.ts lists them by service.
 *
 * Decoded requests (api/grpc-proto.ts options): unset scalars are their zero
 * value, unset `optional` fields are absent and unset messages are null.
 */
import type { Caller, ControlPlaneRuntime } from '../service/contracts.ts';

/** What a unary handler gets: the caller from TLS, the decoded request and the client's address. */
export type UnaryHandler = (
  runtime: ControlPlaneRuntime,
  caller: Caller,
  request: Record<string, unknown>,
  source: string,
) => Promise<unknown>;

export interface UnaryMethod {
  /** Open to anonymous callers (only Join). */
  anonymous?: boolean;
  handle: UnaryHandler;
}

/** The methods of one proto service, by RPC name. */
export type ServiceMethods = Record<string, UnaryMethod>;

/** The answer of an RPC that returns google.protobuf.Empty. */
export const EMPTY = Object.freeze({});

export const str = (value: unknown): string => (typeof value === 'string' ? value : '');

export const present = <T>(value: T | null | undefined): T | undefined =>
  value === null ? undefined : value;

/** A message field: null (unset) stays undefined so the service reports the missing field. */
export function message<T>(value: unknown): T | undefined {
  return value === null || value === undefined ? undefined : (value as T);
}

export const items = (list: readonly unknown[]) => ({ items: list });
