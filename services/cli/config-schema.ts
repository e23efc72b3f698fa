/**
 * The JSON Schema of clusteradm's admin configuration (admin.json, like a
 * kubeconfig; config.ts reads it). Fields are listed in the order the file
 * documents them, so the first complaint is the first bad field. Fields the
 * schema does not know are ignored, as clusteradm always has.
 */
import type { ConfigSchema } from '../api/config-check.ts';

const SERVER = 'a non-empty list of https:// URLs is required';
const url = { type: 'string', pattern: '^https://', description: SERVER };
const file = { type: 'string', minLength: 1, description: 'a file name is required' };

export const ADMIN_CONFIG_SCHEMA = {
  type: 'object',
  description: 'a JSON object is required',
  required: ['server', 'caFile', 'certFile', 'keyFile'],
  properties: {
    server: {
      description: SERVER,
      // One URL is a list of one.
      anyOf: [{ type: 'array', minItems: 1, items: url, description: SERVER }, url],
    },
    caFile: file,
    certFile: file,
    keyFile: file,
  },
} satisfies ConfigSchema;
