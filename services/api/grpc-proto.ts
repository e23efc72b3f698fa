/**
 * openapi/amalgam.proto, loaded once. Field names become camelCase (the
 * contracts' names), int64 becomes a JS number (every size and address is
 * below 2^53), unset scalars read as their zero value and unset `optional`
 * fields and messages as absent/null: handlers.ts maps that to the contracts.
 */
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_PATH = fileURLToPath(new URL('../../openapi/amalgam.proto', import.meta.url));

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: false,
};

export function loadAmalgamProto(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
}

export const SERVICE_NAMES = [
  'amalgam.v1.Cluster',
  'amalgam.v1.Tokens',
  'amalgam.v1.Nodes',
  'amalgam.v1.Memory',
  'amalgam.v1.Devices',
  'amalgam.v1.Watch',
] as const;
