/**
 * What clusterd bounds at its doors, and the quotas per owner: the `limits`
 * and `quotas` blocks of its config (checked by config-schema.ts), with the
 * defaults that apply to every field left out.
 *
 *   limits.connectionTimeoutMs   a socket with no traffic this long is closed (REST; default 60 s;
 *                                an open watch stream is exempt: the watch caps bound those)
 *   limits.headersTimeoutMs      the request line and headers must arrive within this (10 s)
 *   limits.requestTimeoutMs      the whole request, body included, within this (30 s): a slow body
 *                                on the anonymous POST /v1/join holds a socket no longer
 *   limits.keepAliveTimeoutMs    an idle keep-alive connection is closed after this (5 s)
 *   limits.maxConnections        open REST connections; more are closed at accept (2048)
 *   limits.bodyLimit             largest request body in bytes (64 KiB; operations that take no
 *                                body accept 1 KiB)
 *   limits.grpcMaxReceiveBytes   largest gRPC message, checked from its length prefix before it
 *                                is buffered or the caller is known (64 KiB, as REST's body)
 *   limits.grpcMaxConcurrentStreams  calls at once on one HTTP/2 connection (100)
 *   limits.grpcKeepaliveTimeMs / grpcKeepaliveTimeoutMs  the server pings every connection this
 *                                often and drops it when no answer comes in time (30 s / 10 s)
 *   limits.grpcMaxConnectionIdleMs  a connection without calls is closed after this (5 min)
 *   limits.watchesPerCaller      open watches of one identity (node, admin, user) per replica (32)
 *   limits.watchesTotal          open watches per replica (1024)
 *   limits.watchQueueEvents / watchQueueBytes  what one watch may have queued for a client that
 *                                reads slowly before it is cut with WATCH_SLOW_CONSUMER
 *                                (10,000 events / 16 MiB)
 *   quotas.pidBlocksPerOwner     PID blocks one owner may claim, ever (64): blocks are never given back
 *   quotas.segmentsPerOwner      segments one owner may hold at once (1024)
 *   quotas.segmentBytesPerOwner  bytes of segments one owner may hold at once (no limit by default)
 */

export interface LimitsConfig {
  connectionTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  bodyLimit: number;
  grpcMaxReceiveBytes: number;
  grpcMaxConcurrentStreams: number;
  grpcKeepaliveTimeMs: number;
  grpcKeepaliveTimeoutMs: number;
  grpcMaxConnectionIdleMs: number;
  watchesPerCaller: number;
  watchesTotal: number;
  watchQueueEvents: number;
  watchQueueBytes: number;
}

export interface QuotaConfig {
  pidBlocksPerOwner: number;
  segmentsPerOwner: number;
  /** Undefined: no limit on bytes, only on the number of segments. */
  segmentBytesPerOwner?: number;
}

export const DEFAULT_LIMITS: Readonly<LimitsConfig> = Object.freeze({
  connectionTimeoutMs: 60_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 2048,
  bodyLimit: 64 * 1024,
  grpcMaxReceiveBytes: 64 * 1024,
  grpcMaxConcurrentStreams: 100,
  grpcKeepaliveTimeMs: 30_000,
  grpcKeepaliveTimeoutMs: 10_000,
  grpcMaxConnectionIdleMs: 300_000,
  watchesPerCaller: 32,
  watchesTotal: 1024,
  watchQueueEvents: 10_000,
  watchQueueBytes: 16 * 1024 * 1024,
});

export const DEFAULT_QUOTAS: Readonly<QuotaConfig> = Object.freeze({
  pidBlocksPerOwner: 64,
  segmentsPerOwner: 1024,
});

/** The file's `limits` block over the defaults; headers must come no later than the request. */
export function limitsFrom(file: Partial<LimitsConfig> | undefined): LimitsConfig {
  const limits = { ...DEFAULT_LIMITS, ...file };
  limits.headersTimeoutMs = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return limits;
}

export function quotasFrom(file: Partial<QuotaConfig> | undefined): QuotaConfig {
  return { ...DEFAULT_QUOTAS, ...file };
}
