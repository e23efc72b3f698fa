/**
 * A cluster for the network process space tests and benchmark: one clusterd
 * (embedded store), N nodes joined with their own keys, and one clusteragent
 * PROCESS per node (so tests can SIGKILL, SIGSTOP and restart agents), each
 * with the process supervisor on and an optional configured CPU count, speed
 * and job slots. Everything dies with the test (setpriv --pdeathsig, tracked
 * children) and the temp root is removed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type ProcessesApi } from '../../services/client/index.ts';
import { type ClusterdReplicas, startClusterdReplicas } from './clusterd.ts';
import { tailFile } from './etcd-cluster.ts';
import { pageServerBinary } from './native.ts';
import { joinNode } from './node.ts';
import { patient } from './patience.ts';
import {
  findSetpriv,
  installHandlers,
  isAlive,
  ownedGroups,
  type Tracked,
  uninstallHandlers,
} from './processes.ts';
import { until } from './until.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const AGENT = join(REPO, 'services/agent/main.ts');
const LOADER = join(REPO, 'scripts/ts-loader.mjs');
export const COUNTER_FIXTURE = join(REPO, 'test/fixtures/checkpoint-counter.mjs');

export interface ProcNodeSpec {
  name: string;
  cpus?: number;
  cpuSpeed?: number;
  slots?: number;
  /** More of the agent's `processes` settings (allowRoot, defaultUser, ...). */
  processes?: Record<string, unknown>;
  /** More environment for the agent (and its fence shims, which get its NODE_OPTIONS). */
  env?: Record<string, string>;
}

export interface ProcCluster {
  cd: ClusterdReplicas;
  root: string;
  admin: ProcessesApi;
  names: string[];
  intervalLog: string;
  agentPid(i: number): number | undefined;
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  signal(i: number, signal: NodeJS.Signals): void;
  restart(i: number): Promise<void>;
  agentLog(i: number): string;
  destroy(): Promise<void>;
}

export async function startProcCluster(options: {
  nodes: ProcNodeSpec[];
  nodeGraceSeconds?: number;
  leaseSeconds?: number;
  processes?: Record<string, unknown>;
}): Promise<ProcCluster> {
  // A grace that a loaded machine's heartbeats can keep (tests about NotReady set their own).
  const grace = options.nodeGraceSeconds ?? Math.max(3, Math.round(patient(3000) / 1000));
  const cd = await startClusterdReplicas({
    count: 1,
    store: { backend: 'embedded' },
    extraConfig: { nodeGraceSeconds: grace, processes: options.processes ?? {} },
  });
  const root = await mkdtemp(join(tmpdir(), `amalgam-proc-${process.pid}-`));
  // Cluster processes run as nobody: they reach their data dirs through root and
  // write files the tests read (counters) into it, like /tmp.
  await chmod(root, 0o1777);
  const tracked: Tracked = { root, children: new Set() };
  ownedGroups.add(tracked);
  installHandlers();
  const intervalLog = join(root, 'intervals.log');
  await writeFile(intervalLog, '');
  const configs: string[] = [];
  const children: (ChildProcess | undefined)[] = [];
  const binary = pageServerBinary();
  for (const spec of options.nodes) {
    const home = join(root, spec.name);
    await mkdir(home, { recursive: true });
    const { files } = await joinNode(cd, spec.name, { home, contributedBytes: 16 * 1024 * 1024 });
    const config = {
      server: cd.urls,
      name: spec.name,
      ...files,
      heartbeatSeconds: Math.max(0.3, grace / 6),
      pageserver: { binary },
      processes: {
        dataDir: join(home, 'data'),
        ...(spec.cpus !== undefined ? { cpus: spec.cpus } : {}),
        ...(spec.cpuSpeed !== undefined ? { cpuSpeed: spec.cpuSpeed } : {}),
        ...(spec.slots !== undefined ? { slots: spec.slots } : {}),
        leaseSeconds: options.leaseSeconds ?? grace,
        intervalLog,
        reportMs: 500,
        resyncMs: 2000,
        ...spec.processes,
      },
    };
    const file = join(home, 'agent.json');
    await writeFile(file, JSON.stringify(config, null, 2));
    configs.push(file);
  }

  async function start(i: number): Promise<void> {
    const name = options.nodes[i]?.name as string;
    const log = openSync(join(root, `${name}.log`), 'a');
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_OPTIONS;
    Object.assign(env, options.nodes[i]?.env ?? {});
    const args = [
      '--import',
      LOADER,
      AGENT,
      '--config',
      configs[i] as string,
      '--log-level',
      'info',
    ];
    const setpriv = findSetpriv();
    const child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', process.execPath, ...args], {
          stdio: ['ignore', log, log],
          env,
        })
      : spawn(process.execPath, args, { stdio: ['ignore', log, log], env });
    children[i] = child;
    tracked.children.add(child);
    child.once('exit', () => tracked.children.delete(child));
  }

  const adminNodes = createClient({ endpoints: cd.urls, ...cd.admin });
  const admin = adminNodes.processes;
  let destroyed = false;
  const cluster: ProcCluster = {
    cd,
    root,
    admin,
    names: options.nodes.map((n) => n.name),
    intervalLog,
    agentPid: (i) => children[i]?.pid,
    async kill(i, signal = 'SIGKILL') {
      const child = children[i];
      if (!child || !isAlive(child)) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(signal);
      await exited;
    },
    signal(i, signal) {
      const child = children[i];
      if (child && isAlive(child)) child.kill(signal);
    },
    restart: start,
    agentLog: (i) => tailFile(join(root, `${options.nodes[i]?.name}.log`)),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      for (let i = 0; i < children.length; i++) {
        const child = children[i];
        if (child && isAlive(child)) {
          child.kill('SIGCONT');
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(t);
        }
      }
      await adminNodes.close();
      await cd.destroy();
      ownedGroups.delete(tracked);
      if (ownedGroups.size === 0) uninstallHandlers();
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < options.nodes.length; i++) await start(i);
    await until(
      'every agent to report its process load',
      async () => {
        const loads = await admin.listLoads();
        return loads.length === options.nodes.length || undefined;
      },
      60_000,
    );
    // Placement takes only nodes whose heartbeat is alive: wait for every
    // node's first beat too (the load report may come first).
    await until(
      'every node to be Ready with a live heartbeat',
      async () => {
        const nodes = await adminNodes.nodes.list();
        const live = nodes.filter((n) => n.state === 'Ready' && n.lastHeartbeatAt !== null);
        return live.length === options.nodes.length || undefined;
      },
      60_000,
    );
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}

/** Interval log lines, grouped per cluster PID: [start, end] in ns (end = Infinity when open). */
export function intervalsOf(
  text: string,
): Map<number, { copy: string; node: string; epoch: number; start: bigint; end: bigint | null }[]> {
  const byCopy = new Map<
    string,
    { cpid: number; node: string; epoch: number; start: bigint | null; end: bigint | null }
  >();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as {
      cpid: number;
      epoch: number;
      node: string;
      copy: string;
      event: string;
      t: string;
    };
    const c = byCopy.get(e.copy) ?? {
      cpid: e.cpid,
      node: e.node,
      epoch: e.epoch,
      start: null,
      end: null,
    };
    if (e.event === 'start') c.start = BigInt(e.t);
    else c.end = BigInt(e.t);
    byCopy.set(e.copy, c);
  }
  const out = new Map<
    number,
    { copy: string; node: string; epoch: number; start: bigint; end: bigint | null }[]
  >();
  for (const [copy, c] of byCopy) {
    if (c.start === null) continue;
    const list = out.get(c.cpid) ?? [];
    list.push({ copy, node: c.node, epoch: c.epoch, start: c.start, end: c.end });
    out.set(c.cpid, list);
  }
  return out;
}

/** Pairs of copies of one cluster PID whose running intervals overlap. */
export function overlaps(text: string): { cpid: number; a: string; b: string }[] {
  const found: { cpid: number; a: string; b: string }[] = [];
  for (const [cpid, list] of intervalsOf(text)) {
    const sorted = [...list].sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
    // Sorted by start: a copy overlaps an earlier one when some earlier copy ends after it
    // starts (a copy without an end line is open: it overlaps everything after its start).
    let last: (typeof sorted)[number] | undefined;
    for (const cur of sorted) {
      if (last && (last.end === null || last.end > cur.start)) {
        found.push({ cpid, a: `${last.node}/e${last.epoch}`, b: `${cur.node}/e${cur.epoch}` });
      }
      // `last`: the copy that ends latest so far (an open one stays).
      if (!last || (last.end !== null && (cur.end === null || cur.end > last.end))) last = cur;
    }
  }
  return found;
}
