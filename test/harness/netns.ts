/**
 * A deploy/local cluster for tests: the same code `deploy/local/up` runs, with a cluster id made
 * from this process's pid, daemons tied to the test process (`setpriv --pdeathsig KILL`), and
 * teardown on `t.teardown`, on process exit and on SIGINT/SIGTERM. Clusters left by a test
 * process that was SIGKILLed (its claim names a dead pid) are torn down by the next start.
 *
 * Needs root, iproute2 and iptables (the CI runs as root).
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ClusterState,
  type DaemonName,
  downSync,
  etcdMembers,
  etcdStatus,
  heal,
  kill,
  loadState,
  type MachineState,
  netem,
  partition,
  pause,
  resume,
  start,
  type UpOptions,
  up,
} from '../../deploy/local/cluster.ts';
import type { Netem } from '../../deploy/local/net.ts';
import { staleClaims } from '../../deploy/local/net.ts';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';

export interface LocalCluster {
  state: ClusterState;
  /** The admin credential (PEM) every client here uses. */
  admin: { ca: string; cert: string; key: string };
  control: MachineState[];
  workers: MachineState[];
  /** An admin client of every replica (failover), or of the named control machines only. */
  client(only?: string[], timeoutMs?: number): AmalgamClient;
  partition(groups: string[][]): string[][];
  heal(): void;
  kill(machine: string, only?: DaemonName): Promise<string[]>;
  start(machine: string, only?: DaemonName): string[];
  pause(machine: string, only?: DaemonName): string[];
  resume(machine: string, only?: DaemonName): string[];
  netem(machines: string[], settings: Netem | 'clear'): void;
  /** The etcd members as the first reachable control machine lists them. */
  etcdMembers(): Promise<{ ID: string; name: string }[]>;
  /** Name of the machine whose etcd member leads, as the reachable members agree. */
  etcdLeader(): Promise<string | undefined>;
  destroy(): void;
}

const live = new Set<ClusterState>();
let handlers = false;

function teardownAll(): void {
  for (const state of live) {
    try {
      downSync(state);
    } catch {
      // best effort on the way out
    }
  }
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  teardownAll();
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  process.kill(process.pid, signal);
}

function installHandlers(): void {
  if (handlers) return;
  handlers = true;
  process.on('exit', teardownAll);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

let sequence = 0;

export async function startLocalCluster(
  t: { teardown(fn: () => unknown): void } | undefined,
  options: Omit<UpOptions, 'log'> & { log?: (line: string) => void },
): Promise<LocalCluster> {
  for (const stale of staleClaims()) {
    try {
      downSync(loadState(stale.stateDir));
    } catch {
      // nothing left to tear down
    }
  }
  installHandlers();
  // Unique per process and per cluster in it: pid in base 36 and a sequence number.
  const id = `${process.pid.toString(36)}${(sequence++).toString(36)}`.slice(-8);
  const state = await up({
    ...options,
    id,
    stateRoot: join(tmpdir(), 'amalgam-local-test'),
    owner: process.pid,
    tied: true,
  });
  live.add(state);
  const destroy = (): void => {
    if (!live.has(state)) return;
    live.delete(state);
    downSync(state);
  };
  t?.teardown(destroy);
  const pki = join(state.adminHome, 'pki');
  const read = (file: string) => (options.bare ? '' : readFileSync(join(pki, file), 'utf8'));
  // A bare cluster (machines and network only) has no credentials.
  const admin = { ca: read('ca.crt'), cert: read('admin.crt'), key: read('admin.key') };
  const control = state.machines.filter((m) => m.role === 'control');
  const byName = (n: string) => control.find((m) => m.name === n);
  return {
    state,
    admin,
    control,
    workers: state.machines.filter((m) => m.role === 'worker'),
    client(only, timeoutMs) {
      const endpoints = only ? only.map((n) => `https://${byName(n)?.ip}:6443`) : state.controlUrls;
      return createClient({
        endpoints,
        ...admin,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      });
    },
    partition: (groups) => partition(state, groups),
    heal: () => heal(state),
    kill: (m, only) => kill(state, m, only),
    start: (m, only) => start(state, m, only),
    pause: (m, only) => pause(state, m, only),
    resume: (m, only) => resume(state, m, only),
    netem: (ms, settings) => netem(state, ms, settings),
    async etcdMembers() {
      for (const m of control) {
        try {
          return await etcdMembers(state, m.ip);
        } catch {
          // try the next member
        }
      }
      throw new Error('no etcd member answered member list');
    },
    async etcdLeader() {
      const ids = new Map<string, string>();
      let leader: string | undefined;
      for (const m of control) {
        const s = await etcdStatus(state, m.ip);
        if (!s) continue;
        ids.set(BigInt(s.memberId).toString(), m.name);
        leader = BigInt(s.leader).toString();
      }
      return leader === undefined ? undefined : ids.get(leader);
    },
    destroy,
  };
}
