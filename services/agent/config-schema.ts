/**
 * The JSON Schema of clusteragent's config file, agent.json (config.ts reads
 * it). Fields are listed in the order the file documents them, so the first
 * complaint is the first bad field. Fields the schema does not know are let
 * through, as the agent always has; what no schema can say (device names by
 * core's rule, a name listed twice) config.ts checks in code.
 */
import type { ConfigSchema } from '../api/config-check.ts';

const string = (description: string) => ({ type: 'string', minLength: 1, description });
const path = string('a path is required');
const number = (minimum: number, description = `a number >= ${minimum} is required`) => ({
  type: 'number',
  minimum,
  description,
});
const positive = { type: 'number', exclusiveMinimum: 0, description: 'a number > 0' };
const port = {
  type: 'integer',
  minimum: 0,
  maximum: 65535,
  description: 'an integer from 0 to 65535 is required',
};
const boolean = { type: 'boolean', description: 'a boolean is required' };
const args = {
  type: 'array',
  items: { type: 'string', description: 'a list of strings is required' },
  description: 'a list of strings is required',
};

const SERVER = 'one https:// URL or a list of them is required';
const url = { type: 'string', pattern: '^https://\\S+$', description: SERVER };

/** `devices`: this machine's devices (fingerprint/devices.ts). */
export const DEVICES_SCHEMA = {
  type: 'object',
  description: 'an object is required',
  properties: {
    block: boolean,
    char: {
      type: 'array',
      description: 'a list of absolute paths is required',
      items: {
        type: 'string',
        pattern: '^/',
        description: 'a list of absolute paths is required',
      },
    },
    declared: {
      type: 'array',
      description: 'a list of {name, path} is required',
      items: {
        type: 'object',
        required: ['name', 'path'],
        description: 'a list of {name, path} is required',
        properties: {
          // The name's rule is core's (isValidDeviceName); config.ts applies it.
          name: { type: 'string', description: "lowercase a-z, 0-9, '.', '_', '-' (1-63)" },
          path: {
            type: 'string',
            pattern: '^\\S+$',
            description: 'a path without whitespace is required',
          },
          readOnly: boolean,
        },
      },
    },
  },
} satisfies ConfigSchema;

/** `remotedev`: mount the cluster's devices (device-space.ts). */
export const REMOTEDEV_SCHEMA = {
  type: 'object',
  description: 'an object is required',
  properties: { mount: path, localdev: path, binary: path, extraArgs: args },
} satisfies ConfigSchema;

const PROCESSES = 'an object, or false to run no cluster processes';

/** `processes` (processes/supervisor.ts): on by default, `false` turns it off. */
const PROCESSES_SCHEMA = {
  description: PROCESSES,
  // The object first: a bad field inside it is the complaint, not "false expected".
  anyOf: [
    {
      type: 'object',
      description: PROCESSES,
      properties: {
        dataDir: path,
        cpus: number(0),
        cpuSpeed: number(0),
        slots: number(0),
        leaseSeconds: positive,
        listenHost: string('a host is required'),
        listenPort: port,
        advertiseAddress: string('an address is required'),
        intervalLog: path,
        reportMs: positive,
        checkpointTimeoutMs: positive,
        resyncMs: positive,
        defaultUser: {
          type: 'string',
          pattern: '^[a-z_][a-z0-9_.-]{0,31}$',
          description: 'a user name of this machine is required',
        },
        allowRoot: boolean,
        maxCheckpointBytes: { type: 'integer', minimum: 1, description: 'a number of bytes >= 1' },
      },
    },
    { const: false, description: PROCESSES },
  ],
};

/** `pageserver` (pageserver-process.ts). */
const PAGESERVER_SCHEMA = {
  type: 'object',
  description: 'an object is required',
  properties: {
    binary: path,
    listenHost: string('a host is required'),
    listenPort: port,
    plaintextLoopback: boolean,
    extraArgs: args,
    devicesFile: path,
    startTimeoutMs: positive,
  },
};

export const AGENT_CONFIG_SCHEMA = {
  type: 'object',
  description: 'a JSON object is required',
  required: ['server', 'name', 'certFile', 'keyFile', 'caFile'],
  properties: {
    server: {
      description: SERVER,
      anyOf: [{ type: 'array', minItems: 1, items: url, description: SERVER }, url],
    },
    name: string('a string is required'),
    certFile: string('a string is required'),
    keyFile: string('a string is required'),
    caFile: string('a string is required'),
    heartbeatSeconds: positive,
    contributeBytes: number(0, 'a number of bytes >= 0 is required'),
    pageserver: PAGESERVER_SCHEMA,
    devices: DEVICES_SCHEMA,
    remotedev: REMOTEDEV_SCHEMA,
    stateDir: path,
    metricsPort: port,
    metricsHost: string('a host is required'),
    processes: PROCESSES_SCHEMA,
  },
} satisfies ConfigSchema;

/** What checkDeviceConfig checks of a config built in code. */
export const DEVICE_CONFIG_SCHEMA = {
  type: 'object',
  properties: { devices: DEVICES_SCHEMA, remotedev: REMOTEDEV_SCHEMA },
} satisfies ConfigSchema;
