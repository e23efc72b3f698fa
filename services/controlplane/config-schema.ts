/**
 * The JSON Schema of clusterd's config file (config.ts reads it). Fields are
 * listed in the order the file documents them, so the first complaint is the
 * first bad field.
 */
import type { ConfigSchema } from '../api/config-check.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const string = (maxLength: number) => ({
  type: 'string',
  minLength: 1,
  maxLength,
  description: `a non-empty string of at most ${maxLength} characters is required`,
});
const integer = (minimum: number, maximum: number) => ({
  type: 'integer',
  minimum,
  maximum,
  description: `an integer from ${minimum} to ${maximum} is required`,
});
const number = (minimum: number, maximum: number) => ({
  type: 'number',
  minimum,
  maximum,
  description: `a number from ${minimum} to ${maximum}`,
});
const path = string(4096);
const endpoint = {
  type: 'object',
  required: ['host', 'port'],
  additionalProperties: false,
  properties: {
    host: string(255),
    port: integer(0, 65535),
  },
};

/** The `join` block (features/nodes/join-limits.ts): all optional. */
const JOIN_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ratePerSecond: number(0.001, 10_000),
    burst: integer(1, 100_000),
    maxSources: integer(1, 10_000_000),
    maxContributedBytes: integer(2 * 1024 * 1024, 2 ** 52),
  },
};

/** The `processes` block (features/processes/process-config.ts): all optional. */
export const PROCESS_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    rebalance: { type: 'boolean', description: 'true or false' },
    rebalanceIntervalMs: number(50, 3_600_000),
    threshold: number(0, 1000),
    cooldownSeconds: number(0, 86_400),
    minAgeSeconds: number(0, 86_400),
    maxMovesPerProcess: number(0, 1_000_000),
    maxMovesPerRound: number(1, 10_000),
    fenceMarginSeconds: number(0, 3600),
  },
} satisfies ConfigSchema;

/**
 * The `limits` block (limits.ts says what each bounds and its default): all
 * optional. Timeouts in milliseconds, sizes in bytes.
 */
export const LIMITS_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    connectionTimeoutMs: integer(1000, 3_600_000),
    headersTimeoutMs: integer(1000, 600_000),
    requestTimeoutMs: integer(1000, 600_000),
    keepAliveTimeoutMs: integer(100, 600_000),
    maxConnections: integer(8, 1_000_000),
    bodyLimit: integer(1024, 16 * 1024 * 1024),
    grpcMaxReceiveBytes: integer(1024, 16 * 1024 * 1024),
    grpcMaxConcurrentStreams: integer(1, 10_000),
    grpcKeepaliveTimeMs: integer(1000, 3_600_000),
    grpcKeepaliveTimeoutMs: integer(1000, 600_000),
    grpcMaxConnectionIdleMs: integer(1000, 86_400_000),
    watchesPerCaller: integer(1, 100_000),
    watchesTotal: integer(1, 1_000_000),
    watchQueueEvents: integer(16, 10_000_000),
    watchQueueBytes: integer(64 * 1024, 1024 * 1024 * 1024),
  },
} satisfies ConfigSchema;

/** The `quotas` block: per owner (`node:<name>`, `admin`, a user), all optional. */
export const QUOTAS_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    pidBlocksPerOwner: integer(1, 2_097_152),
    segmentsPerOwner: integer(1, 1_000_000),
    segmentBytesPerOwner: integer(1, 2 ** 52),
  },
} satisfies ConfigSchema;

export const CLUSTERD_CONFIG_SCHEMA = {
  type: 'object',
  required: ['clusterName', 'listen', 'tls', 'store'],
  additionalProperties: false,
  properties: {
    clusterName: {
      type: 'string',
      minLength: 1,
      maxLength: 253,
      pattern: '^[\\x21-\\x7e]+$',
      description: '1 to 253 characters of printable ASCII without spaces are required',
    },
    listen: endpoint,
    tls: {
      type: 'object',
      required: ['certFile', 'keyFile', 'caFile', 'caKeyFile'],
      additionalProperties: false,
      properties: { certFile: path, keyFile: path, caFile: path, caKeyFile: path },
    },
    store: {
      type: 'object',
      required: ['backend'],
      additionalProperties: false,
      properties: {
        backend: {
          type: 'string',
          enum: ['embedded', 'etcd'],
          description: "'embedded' or 'etcd' is required",
        },
        dataDir: path,
        endpoints: {
          type: 'array',
          minItems: 1,
          maxItems: 16,
          description: 'a list of 1 to 16 etcd client URLs is required',
          items: {
            type: 'string',
            maxLength: 1024,
            pattern: '^https?://[^\\s/]+/?$',
            description: 'an http(s)://host:port URL is required',
          },
        },
        // etcd asks every client for a certificate of the etcd CA (`--client-cert-auth`).
        tls: {
          type: 'object',
          required: ['ca', 'cert', 'key'],
          additionalProperties: false,
          description:
            "the etcd CA and clusterd's etcd client certificate and key: {ca, cert, key}",
          properties: { ca: path, cert: path, key: path },
        },
      },
      allOf: [
        {
          if: { properties: { backend: { const: 'embedded' } } },
          // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword
          then: { required: ['dataDir'], properties: { endpoints: false, tls: false } },
        },
        {
          if: { properties: { backend: { const: 'etcd' } } },
          // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword
          then: { required: ['endpoints'], properties: { dataDir: false } },
        },
        {
          // An https:// endpoint without the client certificate is a config error, not a
          // connection that fails forever: etcd refuses every client without one.
          if: {
            required: ['endpoints'],
            properties: { endpoints: { contains: { pattern: '^https://' } } },
          },
          // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword
          then: { required: ['tls'] },
        },
      ],
    },
    logLevel: {
      type: 'string',
      enum: LOG_LEVELS,
      description: `one of ${LOG_LEVELS.join(', ')} is required`,
    },
    nodeGraceSeconds: integer(1, 3600),
    bodyLimit: integer(1024, 16 * 1024 * 1024),
    singleMachine: { type: 'boolean', description: 'true or false is required' },
    grpcListen: endpoint,
    processes: PROCESS_CONFIG_SCHEMA,
    join: JOIN_CONFIG_SCHEMA,
    limits: LIMITS_CONFIG_SCHEMA,
    quotas: QUOTAS_CONFIG_SCHEMA,
  },
} satisfies ConfigSchema;
