/**
 * clusteragent's Prometheus metrics, in the agent's own registry (no globals):
 * heartbeats, and the page server's STAT counters as `amalgam_pageserver_*`.
 *
 * The page server's counters restart at 0 with each process; the exported
 * counters add the increase since the last STAT (the whole value after a
 * restart), so they only ever go up, as counters must.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { PageServerStats } from '../client/pageserver-client.ts';

type Stat = keyof PageServerStats;

const COUNTERS: { stat: Stat; name: string; help: string; op?: string }[] = [
  { stat: 'requestsRead', name: 'amalgam_pageserver_requests_total', help: '', op: 'read' },
  { stat: 'requestsWrite', name: 'amalgam_pageserver_requests_total', help: '', op: 'write' },
  { stat: 'requestsCas64', name: 'amalgam_pageserver_requests_total', help: '', op: 'cas64' },
  {
    stat: 'requestsFetchAdd64',
    name: 'amalgam_pageserver_requests_total',
    help: '',
    op: 'fetch_add64',
  },
  { stat: 'requestsStat', name: 'amalgam_pageserver_requests_total', help: '', op: 'stat' },
  {
    stat: 'requestsInvalid',
    name: 'amalgam_pageserver_requests_invalid_total',
    help: 'Requests rejected as malformed.',
  },
  { stat: 'bytesRead', name: 'amalgam_pageserver_read_bytes_total', help: 'Bytes served by READ.' },
  {
    stat: 'bytesWritten',
    name: 'amalgam_pageserver_written_bytes_total',
    help: 'Bytes stored by WRITE.',
  },
  {
    stat: 'errors',
    name: 'amalgam_pageserver_errors_total',
    help: 'Requests answered with an error status.',
  },
  {
    stat: 'connectionsAccepted',
    name: 'amalgam_pageserver_connections_accepted_total',
    help: 'Connections accepted.',
  },
];

export interface AgentMetrics {
  registry: Registry;
  heartbeat(outcome: 'ok' | 'error'): void;
  pageServerStarted(): void;
  pageServerExited(): void;
  pageServerUp(up: boolean): void;
  /** A new STAT snapshot of the current process (`fresh`: the first of a new process). */
  pageServerStats(stats: PageServerStats, fresh: boolean): void;
  /** Device counts: this machine's inventory, its exported devices, the devices its mount shows. */
  devices(counts: { inventoried?: number; exported?: number; mounted?: number }): void;
  remotedevStarted(): void;
  remotedevExited(): void;
}

const counter = (registry: Registry, name: string, help: string) =>
  new Counter({ name, help, registers: [registry] });
const gauge = (registry: Registry, name: string, help: string) =>
  new Gauge({ name, help, registers: [registry] });

type HeartbeatMetrics = Pick<AgentMetrics, 'heartbeat'>;
type PageServerMetrics = Pick<
  AgentMetrics,
  'pageServerStarted' | 'pageServerExited' | 'pageServerUp' | 'pageServerStats'
>;
type DeviceMetrics = Pick<AgentMetrics, 'devices' | 'remotedevStarted' | 'remotedevExited'>;

function heartbeatMetrics(registry: Registry): HeartbeatMetrics {
  const heartbeats = new Counter({
    name: 'amalgam_agent_heartbeats_total',
    help: 'Heartbeats sent to clusterd, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const last = gauge(
    registry,
    'amalgam_agent_heartbeat_last_success_timestamp_seconds',
    'When the last heartbeat was acknowledged.',
  );
  return {
    heartbeat(outcome) {
      heartbeats.inc({ outcome });
      if (outcome === 'ok') last.set(Date.now() / 1000);
    },
  };
}

/** The page server's STAT counters, one prom-client counter per name. */
function statCounters(registry: Registry): Map<string, Counter<'op'>> {
  const counters = new Map<string, Counter<'op'>>();
  for (const c of COUNTERS) {
    if (counters.has(c.name)) continue;
    const labelNames = c.op ? (['op'] as const) : [];
    const help = c.help || 'Page server requests, by operation.';
    counters.set(
      c.name,
      new Counter({ name: c.name, help, labelNames, registers: [registry] }) as Counter<'op'>,
    );
  }
  return counters;
}

function pageServerMetrics(registry: Registry): PageServerMetrics {
  const p = 'amalgam_pageserver_';
  const starts = counter(
    registry,
    `${p}starts_total`,
    'Page server processes started by the agent.',
  );
  const exits = counter(
    registry,
    `${p}exits_total`,
    'Page server processes that exited (stopped or crashed).',
  );
  const up = gauge(registry, `${p}up`, '1 when the page server answers its health check (STAT).');
  const open = gauge(registry, `${p}connections_open`, 'Connections open on the page server.');
  const rangeStart = gauge(
    registry,
    `${p}range_start_bytes`,
    'First address the page server serves.',
  );
  const rangeSize = gauge(registry, `${p}range_size_bytes`, 'Bytes the page server serves.');
  const counters = statCounters(registry);
  let last: PageServerStats | null = null;
  up.set(0);
  return {
    pageServerStarted: () => starts.inc(),
    pageServerExited() {
      exits.inc();
      up.set(0);
      open.set(0);
    },
    pageServerUp: (value) => up.set(value ? 1 : 0),
    pageServerStats(stats, fresh) {
      if (fresh) last = null;
      for (const c of COUNTERS) {
        const now = stats[c.stat];
        const before = last?.[c.stat] ?? 0n;
        const delta = now >= before ? now - before : now;
        const target = counters.get(c.name);
        if (!target || delta <= 0n) continue;
        if (c.op) target.inc({ op: c.op }, Number(delta));
        else target.inc(Number(delta));
      }
      open.set(Number(stats.connectionsOpen));
      rangeStart.set(Number(stats.rangeStart));
      rangeSize.set(Number(stats.rangeSize));
      last = stats;
    },
  };
}

function deviceMetrics(registry: Registry): DeviceMetrics {
  const counts = new Gauge({
    name: 'amalgam_agent_devices',
    help: "Devices: this machine's inventory (inventoried), those it exports (exported), those its /remotedev mount shows (mounted).",
    labelNames: ['state'] as const,
    registers: [registry],
  });
  const r = 'amalgam_remotedev_';
  const starts = counter(
    registry,
    `${r}starts_total`,
    'remotedev-fuse processes started (mounted) by the agent.',
  );
  const exits = counter(
    registry,
    `${r}exits_total`,
    'remotedev-fuse processes that exited (stopped or crashed).',
  );
  const up = gauge(registry, `${r}up`, "1 while the agent's remotedev-fuse is mounted.");
  up.set(0);
  return {
    devices(values) {
      for (const [state, value] of Object.entries(values)) {
        if (value !== undefined) counts.set({ state }, value);
      }
    },
    remotedevStarted() {
      starts.inc();
      up.set(1);
    },
    remotedevExited() {
      exits.inc();
      up.set(0);
    },
  };
}

export function createAgentMetrics(registry = new Registry()): AgentMetrics {
  return {
    registry,
    ...heartbeatMetrics(registry),
    ...pageServerMetrics(registry),
    ...deviceMetrics(registry),
  };
}
