/**
 * The systems a chaos run can drive, behind one interface: amalgam (clusterd on each control
 * machine, over its REST API with mutual TLS) and the naive allocator (naive-allocator.ts on each
 * control machine). The workload calls one machine's API at a time, so the history knows which
 * side of a partition answered.
 */
import { fileURLToPath } from 'node:url';
import { startProcess } from '../../deploy/local/cluster.ts';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';
import type { LocalCluster } from '../harness/netns.ts';
import { until } from '../harness/until.ts';
import type { AllocateOk, FinalState, JoinOk, PidBlockOk } from './checker.ts';

export interface JoinCall {
  name: string;
  csrPem: string;
  /** sha256 of the key the CSR is for (what the node's identity must be). */
  identity: string;
  contributedBytes: number;
}

export interface SystemUnderTest {
  name: string;
  /** Machines whose API the workload calls. */
  targets: string[];
  join(target: string, call: JoinCall): Promise<JoinOk>;
  allocate(target: string, call: { id: string; size: number }): Promise<AllocateOk>;
  /** A block of `size` cluster PIDs for the workload (amalgam: as the admin, owner `admin`). */
  claimPidBlock(target: string, call: { size: number }): Promise<PidBlockOk>;
  /** After the faults are healed: the state a reader sees once a fresh write went through. */
  finalState(): Promise<FinalState>;
  close(): Promise<void>;
}

const MiB = 1024 * 1024;

/**
 * `timeoutMs` per call: short enough that calls to a minority (which answers NO_QUORUM after
 * 6 s, or not at all) begin and end inside a 12 s partition; a call cut short is `info`.
 */
export async function amalgamSystem(
  cluster: LocalCluster,
  timeoutMs = 5_000,
): Promise<SystemUnderTest> {
  const targets = cluster.control.map((m) => m.name);
  const admin = cluster.client(undefined, 30_000);
  const { token } = await admin.tokens.create({ ttlSeconds: 3600, description: 'chaos workload' });
  // The PID table is read over every replica (failover), like `admin`.
  const adminPids = createClient({
    endpoints: cluster.control.map((m) => `https://${m.ip}:6443`),
    ...cluster.admin,
    timeoutMs: 30_000,
  });
  const perTarget = new Map<string, { admin: AmalgamClient; anonymous: AmalgamClient }>();
  for (const m of cluster.control) {
    const endpoints = [`https://${m.ip}:6443`];
    perTarget.set(m.name, {
      admin: createClient({ endpoints, ...cluster.admin, timeoutMs }),
      anonymous: createClient({ endpoints, ca: cluster.admin.ca, timeoutMs }),
    });
  }
  const clients = (target: string) => {
    const c = perTarget.get(target);
    if (!c) throw new Error(`no machine ${target}`);
    return c;
  };
  return {
    name: 'amalgam',
    targets,
    async join(target, call) {
      const r = await clients(target).anonymous.nodes.join({
        token,
        name: call.name,
        csr: call.csrPem,
        capacity: {
          memoryBytes: 4 * call.contributedBytes,
          swapBytes: 0,
          contributedBytes: call.contributedBytes,
          cpus: 1,
          cpuSpeed: 1,
        },
      });
      return { name: r.node.name, identity: r.node.identity, range: r.node.range };
    },
    async allocate(target, call) {
      const s = await clients(target).admin.memory.allocateSegment(call);
      return { id: s.id, size: s.size, extents: s.extents };
    },
    async claimPidBlock(target, call) {
      const b = await clients(target).admin.processes.claimPidBlock(call.size);
      return { start: b.start, size: b.size, owner: b.owner, claimedAt: b.claimedAt };
    },
    async finalState() {
      const barrier = `barrier-${Date.now()}`;
      await until(
        'a write after the heal',
        () => admin.memory.allocateSegment({ id: barrier, size: 2 * MiB }),
        120_000,
      );
      const segments = await until('the barrier in the listing', async () => {
        const list = await admin.memory.listSegments();
        return list.some((s) => s.id === barrier) ? list : undefined;
      });
      const nodes = await admin.nodes.list();
      // A linearizable read of the PID table, after the barrier write went through.
      const pidBlocks = await adminPids.processes.listPidBlocks();
      return {
        pidBlocks: pidBlocks.map((b) => ({
          start: b.start,
          size: b.size,
          owner: b.owner,
          claimedAt: b.claimedAt,
        })),
        nodes: nodes.map((n) => ({ name: n.name, identity: n.identity, range: n.range })),
        segments: segments
          .filter((s) => s.id !== barrier)
          .map((s) => ({ id: s.id, size: s.size, extents: s.extents })),
      };
    },
    async close() {
      await Promise.all([admin.close(), adminPids.close()]);
      for (const c of perTarget.values()) await Promise.all([c.admin.close(), c.anonymous.close()]);
    },
  };
}

const NAIVE = fileURLToPath(new URL('naive-allocator.ts', import.meta.url));
const LOADER = fileURLToPath(new URL('../../scripts/ts-loader.mjs', import.meta.url));
const NAIVE_PORT = 7443;

class CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Starts naive-allocator.ts on every control machine of a (bare) local cluster. */
export async function naiveSystem(
  cluster: LocalCluster,
  timeoutMs = 10_000,
): Promise<SystemUnderTest> {
  const address = (name: string) =>
    `${cluster.control.find((m) => m.name === name)?.ip}:${NAIVE_PORT}`;
  for (const m of cluster.control) {
    const peers = cluster.control.filter((p) => p !== m).map((p) => `${p.ip}:${NAIVE_PORT}`);
    startProcess(cluster.state, m.name, 'naive', [
      process.execPath,
      '--import',
      LOADER,
      NAIVE,
      '--listen',
      `${m.ip}:${NAIVE_PORT}`,
      '--peers',
      peers.join(','),
    ]);
  }
  const call = async <T>(target: string, path: string, body?: unknown): Promise<T> => {
    let r: Response;
    try {
      r = await fetch(`http://${address(target)}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        ...(body === undefined
          ? {}
          : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new CallError('UNAVAILABLE', (err as Error).message);
    }
    const json = (await r.json()) as T & { code?: string; message?: string };
    if (!r.ok) throw new CallError(json.code ?? 'INTERNAL', json.message ?? String(r.status));
    return json;
  };
  for (const m of cluster.control) {
    await until(`naive allocator on ${m.name}`, () => call(m.name, '/state'), 60_000);
  }
  return {
    name: 'naive',
    targets: cluster.control.map((m) => m.name),
    join: (target, c) =>
      call<JoinOk>(target, '/join', {
        name: c.name,
        identity: c.identity,
        contributedBytes: c.contributedBytes,
      }),
    allocate: (target, c) => call<AllocateOk>(target, '/segments', c),
    claimPidBlock: (target, c) =>
      call<PidBlockOk>(target, '/pid-blocks', { size: c.size, owner: 'workload' }),
    // A reader asks one replica (the first), as a client of the real system would.
    finalState: () =>
      until(
        'the naive allocator answers',
        () => call<FinalState>(cluster.control[0]?.name ?? 'c0', '/state'),
        60_000,
      ),
    async close() {},
  };
}
