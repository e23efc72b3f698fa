/**
 * clusterd's Prometheus metrics. Each app instance passes its own `Registry`
 * (no global default registry), so several clusterd instances in one process
 * (tests) never share or clash.
 *
 * - HTTP: `amalgam_http_requests_total{route,method,code}` and
 *   `amalgam_http_request_duration_seconds{route,method}`; `route` is the
 *   route template (`/v1/nodes/:name`), never the raw URL, so the label set
 *   stays bounded; unmatched URLs count as `route="unmatched"`.
 * - Cluster state, read from `runtime.stats()` when scraped (one call per
 *   scrape, shared by the gauges): `amalgam_nodes{state}`,
 *   `amalgam_memory_address_space_allocated_bytes`, `..._free_bytes`,
 *   `amalgam_controller_leader`, and `amalgam_controlplane_stats_up` (0 when
 *   the last scrape could not read them, e.g. no quorum: the other gauges
 *   then keep their previous values).
 * - Store: `amalgam_store_txn_duration_seconds{backend,outcome}` through the
 *   `instrumentStore` decorator.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { NodeState } from '../api/contracts.ts';
import type { Store, TxnRequest, TxnResult } from '../store/store.ts';
import type { ControlPlaneRuntime, ControlPlaneStats } from './service/contracts.ts';

const NODE_STATES: readonly NodeState[] = ['Joining', 'Ready', 'NotReady', 'Draining', 'Removed'];

/** Request latencies: 1 ms to 10 s. */
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Store transactions include an fsync or a Raft round: 100 µs to 10 s. */
const TXN_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10];

/** The metric `name` in `registry`, created by `create` the first time it is asked for. */
function once<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

export interface HttpMetrics {
  observe(route: string, method: string, code: number, seconds: number): void;
}

export function createHttpMetrics(registry: Registry): HttpMetrics {
  const requests = once(
    registry,
    'amalgam_http_requests_total',
    () =>
      new Counter({
        name: 'amalgam_http_requests_total',
        help: 'HTTP requests answered, by route template, method and status code.',
        labelNames: ['route', 'method', 'code'] as const,
        registers: [registry],
      }),
  );
  const duration = once(
    registry,
    'amalgam_http_request_duration_seconds',
    () =>
      new Histogram({
        name: 'amalgam_http_request_duration_seconds',
        help: 'Time from receiving a request to finishing its answer.',
        labelNames: ['route', 'method'] as const,
        buckets: HTTP_BUCKETS,
        registers: [registry],
      }),
  );
  return {
    observe(route, method, code, seconds) {
      requests.inc({ route, method, code: String(code) });
      duration.observe({ route, method }, seconds);
    },
  };
}

/**
 * Gauges read from the runtime at scrape time. The gauges' `collect`
 * callbacks run together for one scrape; they share one `stats()` call.
 */
export function registerRuntimeMetrics(
  registry: Registry,
  runtime: Pick<ControlPlaneRuntime, 'stats'>,
): void {
  let inflight: Promise<ControlPlaneStats | undefined> | undefined;
  const read = (): Promise<ControlPlaneStats | undefined> => {
    inflight ??= runtime
      .stats()
      .catch(() => undefined)
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  };

  new Gauge({
    name: 'amalgam_controlplane_stats_up',
    help: '1 when the last scrape read the cluster state from the store, 0 when it could not.',
    registers: [registry],
    async collect() {
      this.set((await read()) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'amalgam_nodes',
    help: 'Nodes by lifecycle state.',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const stats = await read();
      if (!stats) return;
      for (const state of NODE_STATES) this.set({ state }, stats.nodesByState[state] ?? 0);
    },
  });
  new Gauge({
    name: 'amalgam_memory_address_space_allocated_bytes',
    help: 'Bytes of the network memory space held by node ranges.',
    registers: [registry],
    async collect() {
      const stats = await read();
      if (stats) this.set(stats.addressSpaceAllocatedBytes);
    },
  });
  new Gauge({
    name: 'amalgam_memory_address_space_free_bytes',
    help: 'Bytes of the network memory space not held by any node range.',
    registers: [registry],
    async collect() {
      const stats = await read();
      if (stats) this.set(stats.addressSpaceFreeBytes);
    },
  });
  new Gauge({
    name: 'amalgam_controller_leader',
    help: '1 when this replica holds the controller leadership, else 0.',
    registers: [registry],
    async collect() {
      const stats = await read();
      if (stats) this.set(stats.leader ? 1 : 0);
    },
  });
  registerJoinRateMetrics(registry, read);
}

/** The join rate limiter's bounded map and its refusals (features/nodes/join-limits.ts). */
function registerJoinRateMetrics(
  registry: Registry,
  read: () => Promise<ControlPlaneStats | undefined>,
): void {
  new Gauge({
    name: 'amalgam_join_rate_limiter_sources',
    help: 'Source addresses the join rate limiter holds a bucket for (bounded by join.maxSources).',
    registers: [registry],
    async collect() {
      const rate = (await read())?.joinRate;
      if (rate) this.set(rate.sources);
    },
  });
  new Counter({
    name: 'amalgam_join_rate_limited_total',
    help: 'Joins refused with RATE_LIMITED by this replica.',
    registers: [registry],
    async collect() {
      const rate = (await read())?.joinRate;
      if (!rate) return;
      this.reset();
      this.inc(rate.refusedTotal);
    },
  });
  new Counter({
    name: 'amalgam_join_rate_limiter_evicted_total',
    help: 'Source addresses evicted (least recently seen) to keep the limiter bounded.',
    registers: [registry],
    async collect() {
      const rate = (await read())?.joinRate;
      if (!rate) return;
      this.reset();
      this.inc(rate.evictedTotal);
    },
  });
}

/**
 * A Store that times every `txn` into `amalgam_store_txn_duration_seconds`
 * (`outcome` = succeeded | failed (a compare did not hold) | error). Every
 * other call goes straight to `store`.
 */
export function instrumentStore(store: Store, registry: Registry): Store {
  const txnDuration = once(
    registry,
    'amalgam_store_txn_duration_seconds',
    () =>
      new Histogram({
        name: 'amalgam_store_txn_duration_seconds',
        help: 'Store transactions, from call to acknowledgement.',
        labelNames: ['backend', 'outcome'] as const,
        buckets: TXN_BUCKETS,
        registers: [registry],
      }),
  );
  const backend = store.backend;
  return {
    backend,
    get: (key) => store.get(key),
    range: (prefix, options) => store.range(prefix, options),
    async txn(request: TxnRequest): Promise<TxnResult> {
      const end = txnDuration.startTimer({ backend });
      try {
        const result = await store.txn(request);
        end({ outcome: result.succeeded ? 'succeeded' : 'failed' });
        return result;
      } catch (err) {
        end({ outcome: 'error' });
        throw err;
      }
    },
    grantLease: (ttlSeconds, options) => store.grantLease(ttlSeconds, options),
    watch: (prefix, options) => store.watch(prefix, options),
    revision: () => store.revision(),
    compact: (revision) => store.compact(revision),
    close: () => store.close(),
  };
}
