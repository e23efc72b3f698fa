/** The typed client of clusterd's REST and gRPC APIs (see client.ts) and CA discovery for joins. */
export {
  type AmalgamClient,
  type ClientOptions,
  createClient,
  type ProcessesApi,
  type ProcessLog,
  type ProcessLogRequest,
} from './client.ts';
export { type DiscoverCaOptions, type DiscoveredCa, discoverCa } from './discover-ca.ts';
export {
  ApiError,
  CLIENT_ERRORS,
  ClientError,
  type ClientErrorCode,
  errorFromProblem,
} from './errors.ts';
export { errorFromGrpc } from './grpc-errors.ts';
export type { ClientWatch, ClientWatchOptions } from './watch.ts';
