/**
 * The process supervisor of clusteragent: runs this node's share of the
 * network process space, and carries out migrations with the fencing rules
 * of services/core/processes.ts.
 *
 * Desired state: the process records (watch of `processes/` plus a periodic
 * list), merged so that a view never goes back (epoch, then progress within
 * the epoch). Actual state: the copies this agent runs, each under a fence
 * shim (fence-shim.mjs). One reconcile pass per cluster PID at a time.
 *
 * For a record and this node:
 * - a copy runs and the record is ours at the copy's epoch: keep it;
 * - a copy runs and the record moved it away from us (migration from us):
 *   checkpoint (SIGTERM with AMALGAM_CHECKPOINT_DIR, wait for exit 0) or stop
 *   it, ship the directory to the target agent, then commit `source-stopped`;
 * - a copy runs for any other reason (killed, stale epoch): kill it;
 * - no copy and the record says home = us: start one, but only with a valid
 *   lease, after a fresh read of the record, and, when it migrates here, only
 *   once the source confirmed its copy is gone (or was fenced: the source's
 *   liveness lease expired and the fence margin passed);
 * - a node that comes back reads the records and never restarts what is no
 *   longer its own.
 *
 * Lease: each acknowledged heartbeat extends our lease to (its send time +
 * leaseSeconds); `leaseSeconds` must not exceed clusterd's nodeGraceSeconds,
 * so our deadline always comes before the store's lease expires. Each shim
 * holds the deadline and SIGKILLs its process when it passes, even if this
 * agent is frozen (SIGSTOP) or dead.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ApiError } from '../../client/errors.ts';
import type { ProcessesApi } from '../../client/index.ts';
import { isTerminal, type ProcessRecord } from '../../core/processes.ts';
import { type AgentEndpoint, pushCheckpoint, startAgentEndpoint, type Tls } from './transfer.ts';

const SHIM = new URL('./fence-shim.mjs', import.meta.url).pathname;

export interface ProcessAgentConfig {
  /** Where copies keep their checkpoint, restore directory and logs. */
  dataDir: string;
  /** CPUs this node offers to cluster processes (default: the machine's). */
  cpus?: number;
  /** CPU speed score reported for placement (default 1). */
  cpuSpeed?: number;
  /** Copies run at once; more wait as pending (default unlimited). */
  slots?: number;
  /** Lease per acknowledged heartbeat; must not exceed clusterd's nodeGraceSeconds. Default 10. */
  leaseSeconds?: number;
  /** The agent's process endpoint (checkpoints, logs; mutual TLS). Default 127.0.0.1:0. */
  listenHost?: string;
  listenPort?: number;
  /** Address published for other agents (default the bound one). */
  advertiseAddress?: string;
  /** Append an interval line per copy start and end here (tests). */
  intervalLog?: string;
  /** Process-load report period. Default 1000 ms. */
  reportMs?: number;
  /** How long a process has to write its checkpoint and exit. Default 10 s. */
  checkpointTimeoutMs?: number;
  /** Full re-list period. Default 3000 ms. */
  resyncMs?: number;
}

interface Copy {
  cpid: number;
  epoch: number;
  id: string;
  shim: ChildProcess;
  pid: number | null;
  startedAt: number;
  /** Why we are ending it, if we are. */
  ending: 'checkpoint' | 'stop' | 'kill' | null;
  exited: Promise<{ code: number | null; signal: string | null; fenced: boolean; error?: string }>;
  done: boolean;
  cpu: { ticks: number; at: number; use: number };
}

export interface ProcessSupervisor {
  /** A heartbeat sent at `sentAt` (ms) was acknowledged. */
  leaseRenewed(sentAt: number): void;
  address(): string;
  /** For tests and status. */
  copies(): { cpid: number; epoch: number; pid: number | null }[];
  close(): Promise<void>;
}

function rank(r: ProcessRecord): number {
  if (isTerminal(r.state)) return 4;
  if (r.state === 'running') return 3;
  if (r.state === 'migrating')
    return r.migration?.sourceStopped ? 2 : r.migration?.sourceLostAt ? 1 : 0;
  return 0;
}

/** Whether `next` is at least as new as `prev` (a view never goes back). */
export function newer(prev: ProcessRecord | undefined, next: ProcessRecord): boolean {
  if (!prev) return true;
  if (next.epoch !== prev.epoch) return next.epoch > prev.epoch;
  if (rank(next) !== rank(prev)) return rank(next) > rank(prev);
  return next.starts >= prev.starts;
}

function codeOf(err: unknown): string | undefined {
  return (err as ApiError | undefined)?.code;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startProcessSupervisor(options: {
  node: string;
  client: ProcessesApi;
  tls: Tls;
  config: ProcessAgentConfig;
  logger: Logger;
  setpriv: string | null;
}): Promise<ProcessSupervisor> {
  const { node, client, tls, config } = options;
  const logger = options.logger.child({ component: 'processes' });
  const leaseMs = (config.leaseSeconds ?? 10) * 1000;
  const slots = config.slots ?? Number.POSITIVE_INFINITY;
  const checkpointTimeoutMs = config.checkpointTimeoutMs ?? 10_000;
  const procDir = join(config.dataDir, 'proc');
  await mkdir(procDir, { recursive: true });
  const dirOf = (cpid: number) => join(procDir, String(cpid));

  const records = new Map<number, ProcessRecord>();
  const copies = new Map<number, Copy>();
  let deadline = 0;
  let closed = false;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    if (closed) return;
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  };

  // ---- copies left by an earlier run of this agent: their shims kill them on EOF; wait ----
  await waitForOrphans();

  // ---- the endpoint other agents ship checkpoints to ----
  const endpoint: AgentEndpoint = await startAgentEndpoint(
    tls,
    config.listenHost ?? '127.0.0.1',
    config.listenPort ?? 0,
    {
      async receiveInto(cpid, epoch, from) {
        let r = records.get(cpid);
        if (!r || r.epoch < epoch) {
          r = await client.get(cpid);
          merge(r);
        }
        const current = records.get(cpid) as ProcessRecord;
        if (current.epoch !== epoch || current.home !== node || current.migration?.from !== from) {
          throw new Error(`not expecting a checkpoint of ${cpid} at epoch ${epoch} from ${from}`);
        }
        await mkdir(dirOf(cpid), { recursive: true });
        return join(dirOf(cpid), `received-${epoch}`);
      },
      received(cpid, epoch) {
        logger.info({ cpid, epoch }, 'checkpoint received');
      },
      logFile: (cpid) => {
        const f = join(dirOf(cpid), 'output.log');
        return existsSync(f) ? f : null;
      },
      running: (cpid) => copies.has(cpid),
    },
  );
  const address = config.advertiseAddress ?? endpoint.address;

  // ---- the view ----
  function merge(r: ProcessRecord): boolean {
    if (!newer(records.get(r.cpid), r)) return false;
    records.set(r.cpid, r);
    return true;
  }
  const relevant = (r: ProcessRecord) =>
    r.home === node || r.migration?.from === node || copies.has(r.cpid);

  // ---- one pass per cluster PID at a time ----
  const passes = new Map<number, { running: boolean; dirty: boolean }>();
  function kick(cpid: number): void {
    if (closed) return;
    let p = passes.get(cpid);
    if (!p) {
      p = { running: false, dirty: false };
      passes.set(cpid, p);
    }
    p.dirty = true;
    if (p.running) return;
    p.running = true;
    const state = p;
    void (async () => {
      try {
        while (state.dirty && !closed) {
          state.dirty = false;
          try {
            await reconcile(cpid);
          } catch (err) {
            logger.warn({ err, cpid }, 'process reconcile failed; retrying');
            later(1000, () => kick(cpid));
          }
        }
      } finally {
        state.running = false;
      }
    })();
  }

  const leaseValid = (marginMs = 1000) => Date.now() + marginMs < deadline;
  /** Copies running plus starts under way (a slot is taken before the first await of a start). */
  let starting = 0;
  const running = () => starting + [...copies.values()].filter((c) => !c.done).length;

  async function reconcile(cpid: number): Promise<void> {
    const r = records.get(cpid);
    const copy = copies.get(cpid);
    if (copy && !copy.done) {
      if (!r || isTerminal(r.state)) return void (await end(copy, 'kill'));
      if (r.home === node && r.epoch === copy.epoch) {
        if (r.state !== 'running') await reportRunning(r);
        return;
      }
      if (r.migration?.from === node && r.state === 'migrating') {
        const how = r.migratable === 'checkpoint' ? 'checkpoint' : 'stop';
        await end(copy, how);
        kick(cpid); // ship and confirm on the next pass
        return;
      }
      // Stale: our epoch is over and nobody waits for our confirmation.
      return void (await end(copy, 'kill'));
    }
    if (copy) return; // ending: the exit handler kicks again
    if (!r || isTerminal(r.state)) return;
    if (
      r.state === 'migrating' &&
      r.migration?.from === node &&
      r.migration.sourceStopped === null
    ) {
      await shipAndConfirm(r);
      return;
    }
    if (r.home !== node) return;
    if (r.state === 'migrating') {
      const m = r.migration;
      if (!m) return;
      if (m.sourceStopped === null) {
        // Wait for the source; ask clusterd whether it is fenced (its lease gone).
        try {
          merge(await client.report(node, cpid, { epoch: r.epoch, event: 'fence-source' }));
        } catch (err) {
          if (codeOf(err) === 'STALE_EPOCH' || codeOf(err) === 'PROCESS_STATE_CONFLICT') {
            merge(await client.get(cpid));
          } else throw err;
        }
        const now = records.get(cpid) as ProcessRecord;
        if (now.migration?.sourceStopped == null) {
          later(500, () => kick(cpid));
          return;
        }
      }
    }
    await startCopy(cpid);
  }

  async function reportRunning(r: ProcessRecord): Promise<void> {
    try {
      merge(await client.report(node, r.cpid, { epoch: r.epoch, event: 'running' }));
    } catch (err) {
      const code = codeOf(err);
      if (code === 'STALE_EPOCH' || code === 'PROCESS_STATE_CONFLICT') {
        merge(await client.get(r.cpid));
        kick(r.cpid);
      } else throw err;
    }
  }

  async function startCopy(cpid: number): Promise<void> {
    if (!leaseValid()) {
      later(500, () => kick(cpid));
      return;
    }
    if (running() >= slots) return; // a slot frees: kickAll
    starting++;
    try {
      await startCopyInSlot(cpid);
    } finally {
      starting--;
    }
  }

  async function startCopyInSlot(cpid: number): Promise<void> {
    // A fresh read: the decision to start is made on the record as it is now.
    const r = await client.get(cpid);
    merge(r);
    const ok =
      r.home === node &&
      !isTerminal(r.state) &&
      (r.state !== 'migrating' || r.migration?.sourceStopped != null);
    if (!ok) {
      kick(cpid);
      return;
    }
    const dir = dirOf(cpid);
    await mkdir(dir, { recursive: true });
    // The state to resume from: what the source shipped for this epoch, else what we had.
    const received = join(dir, `received-${r.epoch}`);
    const restore = join(dir, 'restore');
    if (r.state === 'migrating' && existsSync(received)) {
      await rm(restore, { recursive: true, force: true });
      await rename(received, restore);
    } else if (r.state === 'migrating' && r.migration?.sourceStopped !== 'checkpointed') {
      await rm(restore, { recursive: true, force: true }); // restart semantics: fresh
    }
    const checkpoint = join(dir, 'checkpoint');
    await rm(checkpoint, { recursive: true, force: true });
    await mkdir(checkpoint, { recursive: true });
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      AMALGAM_CPID: String(cpid),
      AMALGAM_EPOCH: String(r.epoch),
      AMALGAM_NODE: node,
      AMALGAM_CHECKPOINT_DIR: checkpoint,
    };
    delete env.NODE_OPTIONS;
    if (existsSync(restore)) env.AMALGAM_RESTORE_DIR = restore;
    const id = randomUUID();
    const spec = {
      command: r.command,
      args: r.args,
      env,
      cwd: dir,
      logFile: join(dir, 'output.log'),
      intervalLog: config.intervalLog ?? null,
      cpid,
      epoch: r.epoch,
      node,
      copy: id,
      deadline,
      setpriv: options.setpriv,
    };
    const shim = spawn(process.execPath, [SHIM, JSON.stringify(spec)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    let resolveExit!: Copy['exited'] extends Promise<infer T> ? (v: T) => void : never;
    const copy: Copy = {
      cpid,
      epoch: r.epoch,
      id,
      shim,
      pid: null,
      startedAt: Date.now(),
      ending: null,
      exited: new Promise((resolve) => {
        resolveExit = resolve;
      }),
      done: false,
      cpu: { ticks: 0, at: Date.now(), use: 0 },
    };
    copies.set(cpid, copy);
    shim.stdin?.on('error', () => {});
    let buffer = '';
    let outcome: {
      code: number | null;
      signal: string | null;
      fenced: boolean;
      error?: string;
    } | null = null;
    shim.stdout?.setEncoding('utf8');
    shim.stdout?.on('data', (d: string) => {
      buffer += d;
      for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        try {
          const msg = JSON.parse(line) as Record<string, unknown>;
          if (typeof msg.pid === 'number') {
            copy.pid = msg.pid;
            void writeFile(
              join(dir, 'copy.json'),
              JSON.stringify({ shim: shim.pid, pid: msg.pid, epoch: r.epoch, id }),
            ).catch(() => {});
          } else if ('exit' in msg) {
            outcome = {
              code: msg.exit as number | null,
              signal: msg.signal as string | null,
              fenced: msg.fenced === true,
              ...(typeof msg.error === 'string' ? { error: msg.error } : {}),
            };
          }
        } catch {
          // not ours
        }
      }
    });
    shim.once('exit', () => {
      copy.done = true;
      const o = outcome ?? { code: null, signal: 'SIGKILL', fenced: true, error: 'shim died' };
      if (copies.get(cpid) === copy) copies.delete(cpid);
      void rm(join(dir, 'copy.json'), { force: true });
      resolveExit(o);
      void onExit(copy, o);
    });
    logger.info({ cpid, epoch: r.epoch, restore: existsSync(restore) }, 'process copy started');
    await reportRunning(r);
  }

  async function onExit(
    copy: Copy,
    o: { code: number | null; signal: string | null; fenced: boolean; error?: string },
  ): Promise<void> {
    logger.info(
      { cpid: copy.cpid, epoch: copy.epoch, ...o, ending: copy.ending },
      'process copy ended',
    );
    kickAll(); // a slot is free
    if (copy.ending !== null || o.fenced || closed) return;
    // It ended by itself: report it for its epoch (refused when the epoch is stale).
    try {
      merge(
        await client.report(
          node,
          copy.cpid,
          o.error !== undefined
            ? { epoch: copy.epoch, event: 'failed', failure: o.error.slice(0, 1000) }
            : o.code !== null
              ? { epoch: copy.epoch, event: 'exited', exitCode: o.code }
              : { epoch: copy.epoch, event: 'failed', failure: `killed by ${o.signal}` },
        ),
      );
    } catch (err) {
      logger.info({ err, cpid: copy.cpid }, 'exit not recorded (the record moved on)');
    }
    kick(copy.cpid);
  }

  /** Ends a copy and waits for it: checkpoint (signal, wait for exit 0), stop or kill. */
  async function end(copy: Copy, how: 'checkpoint' | 'stop' | 'kill'): Promise<void> {
    if (copy.ending === null) {
      copy.ending = how;
      logger.info({ cpid: copy.cpid, epoch: copy.epoch, how }, 'ending process copy');
      if (how === 'kill') copy.shim.stdin?.write('kill\n');
      else {
        copy.shim.stdin?.write('signal SIGTERM\n');
        const timer = setTimeout(() => copy.shim.stdin?.write('kill\n'), checkpointTimeoutMs);
        void copy.exited.then(() => clearTimeout(timer));
      }
    }
    const o = await copy.exited;
    const dir = dirOf(copy.cpid);
    // A checkpoint counts only when the process exited 0 after our signal.
    if (how === 'checkpoint' && o.code === 0 && !o.fenced) {
      await writeFile(join(dir, 'checkpoint', '.complete'), String(copy.epoch)).catch(() => {});
    }
  }

  async function shipAndConfirm(r: ProcessRecord): Promise<void> {
    const m = r.migration;
    if (!m) return;
    const dir = dirOf(r.cpid);
    const checkpoint = join(dir, 'checkpoint');
    const restore = join(dir, 'restore');
    let ship: string | null = null;
    if (r.migratable === 'checkpoint') {
      if (existsSync(join(checkpoint, '.complete'))) ship = checkpoint;
      else if (existsSync(restore)) ship = restore; // the last state we resumed from
    }
    let how: 'checkpointed' | 'stopped' = 'stopped';
    if (ship !== null) {
      const loads = await client.listLoads();
      const target = loads.find((l) => l.node === m.to)?.agentAddress;
      if (!target) {
        logger.warn({ cpid: r.cpid, to: m.to }, 'target agent address unknown; retrying');
        later(1000, () => kick(r.cpid));
        return;
      }
      try {
        const files = await pushCheckpoint(tls, m.to, target, r.cpid, r.epoch, ship);
        logger.info({ cpid: r.cpid, to: m.to, files }, 'checkpoint shipped');
        how = 'checkpointed';
      } catch (err) {
        logger.warn({ err, cpid: r.cpid, to: m.to }, 'checkpoint transfer failed; retrying');
        merge(await client.get(r.cpid).catch(() => r));
        later(1000, () => kick(r.cpid));
        return;
      }
    }
    try {
      merge(await client.report(node, r.cpid, { epoch: r.epoch, event: 'source-stopped', how }));
      logger.info({ cpid: r.cpid, to: m.to, how }, 'source stopped confirmed');
    } catch (err) {
      if (codeOf(err) === 'STALE_EPOCH' || codeOf(err) === 'PROCESS_STATE_CONFLICT') {
        merge(await client.get(r.cpid));
        kick(r.cpid);
        return;
      }
      throw err;
    }
  }

  function kickAll(): void {
    for (const r of records.values()) if (relevant(r)) kick(r.cpid);
    for (const cpid of copies.keys()) kick(cpid);
  }

  async function waitForOrphans(): Promise<void> {
    let names: string[] = [];
    try {
      names = await readdir(procDir);
    } catch {
      return;
    }
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (const name of names) {
      const file = join(procDir, name, 'copy.json');
      let info: { shim: number; pid: number } | null = null;
      try {
        info = JSON.parse(await readFile(file, 'utf8')) as { shim: number; pid: number };
      } catch {
        continue;
      }
      const until = Date.now() + 10_000;
      while ((alive(info.shim) || alive(info.pid)) && Date.now() < until) await sleep(50);
      for (const pid of [info.pid, info.shim]) {
        if (alive(pid)) {
          logger.warn({ pid }, 'killing a copy left by an earlier agent');
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      await rm(file, { force: true });
    }
  }

  // ---- desired state: watch + resync ----
  let watch: ReturnType<ProcessesApi['watch']> | null = null;
  async function watchLoop(): Promise<void> {
    while (!closed) {
      watch = client.watch({ retryForMs: 60_000 });
      try {
        for await (const event of watch) {
          if (event.type !== 'put' || event.value === null) continue;
          const r = event.value as ProcessRecord;
          if (merge(r) && relevant(r)) kick(r.cpid);
        }
      } catch (err) {
        if (!closed) logger.warn({ err }, 'process watch ended; re-opening');
      }
      await sleep(500);
    }
  }
  async function resync(): Promise<void> {
    try {
      for (const r of await client.list())
        if (merge(r) || relevant(r)) if (relevant(r)) kick(r.cpid);
      for (const cpid of copies.keys()) kick(cpid);
    } catch (err) {
      logger.warn({ err }, 'cannot list processes');
    }
    later(config.resyncMs ?? 3000, () => void resync());
  }

  // ---- load reports ----
  const cpus = config.cpus ?? (await import('node:os')).availableParallelism();
  const ticksPerSecond = 100;
  async function cpuOf(copy: Copy): Promise<number> {
    if (copy.pid === null) return 0;
    try {
      const stat = await readFile(`/proc/${copy.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      const now = Date.now();
      const dt = (now - copy.cpu.at) / 1000;
      if (dt > 0 && copy.cpu.ticks > 0)
        copy.cpu.use = (ticks - copy.cpu.ticks) / ticksPerSecond / dt;
      copy.cpu.ticks = ticks;
      copy.cpu.at = now;
      return Math.max(0, Math.min(copy.cpu.use, 4096));
    } catch {
      return 0;
    }
  }
  async function report(): Promise<void> {
    try {
      const procs = [];
      for (const c of copies.values()) {
        if (!c.done) procs.push({ cpid: c.cpid, epoch: c.epoch, cpu: await cpuOf(c) });
      }
      let runnable = 0;
      try {
        const text = await readFile('/proc/loadavg', 'utf8');
        runnable = Number(text.split(' ')[3]?.split('/')[0] ?? 0);
      } catch {
        // not Linux
      }
      await client.reportLoad(node, {
        cpus,
        cpuSpeed: config.cpuSpeed ?? 1,
        load1: Math.min(loadavg()[0] ?? 0, 1e6),
        runnable,
        agentAddress: address,
        processes: procs.slice(0, 1024),
      });
    } catch (err) {
      logger.warn({ err }, 'process-load report failed');
    }
    later(config.reportMs ?? 1000, () => void report());
  }

  void report();
  void watchLoop();
  void resync();
  logger.info({ address, cpus, slots: config.slots ?? null }, 'process supervisor started');

  return {
    leaseRenewed(sentAt) {
      const next = sentAt + leaseMs;
      if (next <= deadline) return;
      const wasValid = leaseValid();
      deadline = next;
      for (const c of copies.values()) c.shim.stdin?.write(`deadline ${deadline}\n`);
      if (!wasValid) kickAll();
    },
    address: () => address,
    copies: () =>
      [...copies.values()]
        .filter((c) => !c.done)
        .map((c) => ({ cpid: c.cpid, epoch: c.epoch, pid: c.pid })),
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      await watch?.close().catch(() => {});
      const live = [...copies.values()];
      for (const c of live) c.shim.stdin?.write('kill\n');
      await Promise.all(live.map((c) => c.exited));
      await endpoint.close();
    },
  };
}
