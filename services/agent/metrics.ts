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

export function createAgentMetrics(registry = new Registry()): AgentMetrics {
  const heartbeats = new Counter({
    name: 'amalgam_agent_heartbeats_total',
    help: 'Heartbeats sent to clusterd, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const lastHeartbeat = new Gauge({
    name: 'amalgam_agent_heartbeat_last_success_timestamp_seconds',
    help: 'When the last heartbeat was acknowledged.',
    registers: [registry],
  });
  const starts = new Counter({
    name: 'amalgam_pageserver_starts_total',
    help: 'Page server processes started by the agent.',
    registers: [registry],
  });
  const exits = new Counter({
    name: 'amalgam_pageserver_exits_total',
    help: 'Page server processes that exited (stopped or crashed).',
    registers: [registry],
  });
  const up = new Gauge({
    name: 'amalgam_pageserver_up',
    help: '1 when the page server answers its health check (STAT).',
    registers: [registry],
  });
  const open = new Gauge({
    name: 'amalgam_pageserver_connections_open',
    help: 'Connections open on the page server.',
    registers: [registry],
  });
  const rangeStart = new Gauge({
    name: 'amalgam_pageserver_range_start_bytes',
    help: 'First address the page server serves.',
    registers: [registry],
  });
  const rangeSize = new Gauge({
    name: 'amalgam_pageserver_range_size_bytes',
    help: 'Bytes the page server serves.',
    registers: [registry],
  });
  const counters = new Map<string, Counter<'op'>>();
  for (const c of COUNTERS) {
    if (counters.has(c.name)) continue;
    counters.set(
      c.name,
      new Counter({
        name: c.name,
        help: c.help || 'Page server requests, by operation.',
        labelNames: c.op ? (['op'] as const) : [],
        registers: [registry],
      }) as Counter<'op'>,
    );
  }
  const deviceCounts = new Gauge({
    name: 'amalgam_agent_devices',
    help: "Devices: this machine's inventory (inventoried), those it exports (exported), those its /remotedev mount shows (mounted).",
    labelNames: ['state'] as const,
    registers: [registry],
  });
  const remotedevStarts = new Counter({
    name: 'amalgam_remotedev_starts_total',
    help: 'remotedev-fuse processes started (mounted) by the agent.',
    registers: [registry],
  });
  const remotedevExits = new Counter({
    name: 'amalgam_remotedev_exits_total',
    help: 'remotedev-fuse processes that exited (stopped or crashed).',
    registers: [registry],
  });
  const remotedevUp = new Gauge({
    name: 'amalgam_remotedev_up',
    help: "1 while the agent's remotedev-fuse is mounted.",
    registers: [registry],
  });
  let last: PageServerStats | null = null;
  up.set(0);
  remotedevUp.set(0);
  return {
    registry,
    heartbeat(outcome) {
      heartbeats.inc({ outcome });
      if (outcome === 'ok') lastHeartbeat.set(Date.now() / 1000);
    },
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
        const counter = counters.get(c.name);
        if (counter && delta > 0n) {
          if (c.op) counter.inc({ op: c.op }, Number(delta));
          else counter.inc(Number(delta));
        }
      }
      open.set(Number(stats.connectionsOpen));
      rangeStart.set(Number(stats.rangeStart));
      rangeSize.set(Number(stats.rangeSize));
      last = stats;
    },
    devices(counts) {
      for (const [state, value] of Object.entries(counts)) {
        if (value !== undefined) deviceCounts.set({ state }, value);
      }
    },
    remotedevStarted() {
      remotedevStarts.inc();
      remotedevUp.set(1);
    },
    remotedevExited() {
      remotedevExits.inc();
      remotedevUp.set(0);
    },
  };
}
