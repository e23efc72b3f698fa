/**
 * Real etcd members for tests and benchmarks.
 *
 * Every member is a child `etcd` process on loopback, with harness-chosen free ports and a data
 * directory under a per-cluster `mkdtemp` root in `os.tmpdir()` (`amalgam-etcd-<pid>-XXXXXX`).
 * etcd's stderr (zap JSON, level warn) goes to a log file next to the member's data directory
 * (or into `logDir`), never to the test output.
 *
 * By default the members serve clients and peers over https only, with `--client-cert-auth` and
 * `--peer-client-cert-auth` against a fresh etcd CA (etcd-pki.ts), as `clusteradm` sets etcd up:
 * `cluster.tls` holds the client credential (`storeOptions()` for an EtcdStore, `storeConfig()`
 * for clusterd). `{ tls: false }` gives plain http members.
 *
 * Cleanup is layered so that a crashed or killed test never leaves etcd running:
 *  1. `destroy()` (idempotent) SIGKILLs every member and removes the temp root;
 *  2. process `exit` / `SIGINT` / `SIGTERM` handlers SIGKILL every member still alive and remove
 *     the temp roots of clusters that were never destroyed;
 *  3. when `setpriv` (util-linux) is available, each member is started with
 *     `--pdeathsig KILL`, so the kernel kills it even if the test process is SIGKILLed;
 *  4. the temp roots such a SIGKILLed process leaves behind are removed by the next
 *     `startEtcdCluster()` in any process (the owner pid in the name is no longer alive).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { EtcdCredentials, EtcdTlsFiles } from '../../services/store/etcd-tls.ts';
import { createEtcdTestPki, type EtcdPem, type EtcdTestPki } from './etcd-pki.ts';
import { patient } from './patience.ts';
import {
  findSetpriv,
  freePorts,
  installHandlers,
  isAlive,
  isExecutableFile,
  ownedGroups,
  pidExists,
  type Tracked,
  uninstallHandlers,
} from './processes.ts';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  /** etcd's `--data-dir` (inside the cluster's temp root). */
  dataDir: string;
  /** Where this member's stderr is appended (kept across restarts). */
  logFile: string;
  pid(): number | undefined;
  running(): boolean;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Client URLs, e.g. `https://127.0.0.1:PORT` (`http://` with `tls: false`). */
  endpoints(): string[];
  /** The etcd CA and the client credential etcd admits; undefined with `tls: false`. */
  tls: EtcdTestPki | undefined;
  /** What `new EtcdStore(...)` needs to reach these members. */
  storeOptions(): { endpoints: string[]; credentials?: EtcdCredentials };
  /** clusterd's `store` configuration for these members. */
  storeConfig(): { backend: 'etcd'; endpoints: string[]; tls?: EtcdTlsFiles };
  /** Send `signal` (default SIGKILL) and wait until the process has exited. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Graceful SIGTERM (escalates to SIGKILL after 10 s); waits for exit. */
  stop(i: number): Promise<void>;
  /** SIGSTOP: the member stays up but stops answering anything. */
  pause(i: number): void;
  /** SIGCONT. */
  resume(i: number): void;
  /**
   * Start member `i` again with the same name, ports and data dir
   * (`--initial-cluster-state existing`). A member that is still running is stopped first.
   * By default waits until the member passes its health check, which needs a quorum; pass
   * `{ waitHealthy: false }` to wait only until its client port accepts connections (e.g. when
   * restarting the members of a cluster that lost quorum one at a time).
   */
  restart(i: number, opts?: { waitHealthy?: boolean }): Promise<void>;
  /** Index of the current leader, as seen by the reachable members. */
  leaderIndex(): Promise<number>;
  /** Last lines of member `i`'s log. */
  logTail(i: number, lines?: number): string;
  /** SIGKILL everything, remove the temp dirs. Idempotent. */
  destroy(): Promise<void>;
}

export interface StartEtcdClusterOptions {
  size?: 1 | 3 | 5;
  /** `--election-timeout`, default 500 ms. Must be >= 5 x heartbeat (etcd refuses otherwise). */
  electionTimeoutMs?: number;
  /** `--heartbeat-interval`, default 50 ms. */
  heartbeatMs?: number;
  /** Write member logs here (they then survive `destroy()`); default: the cluster's temp root. */
  logDir?: string;
  /** How long to wait for every member to become healthy; default 20 s. */
  startTimeoutMs?: number;
  /** Extra etcd flags appended to every member's command line (benchmarks). */
  extraArgs?: string[];
  /** https with client-certificate auth for clients and peers; default true. */
  tls?: boolean;
}

const DEFAULT_HEARTBEAT_MS = 50;
const DEFAULT_ELECTION_MS = 500;
const DEFAULT_START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 10_000;
const PORT_RETRIES = 3;
const START_MARKER = '--- harness: start';

// ---------------------------------------------------------------------------------------------
// Binary lookup

let cachedBinary: string | undefined;

export function findEtcdBinary(): string {
  if (cachedBinary) return cachedBinary;
  const override = process.env.AMALGAM_ETCD_BIN;
  if (override) {
    if (!isExecutableFile(override)) {
      throw new Error(`AMALGAM_ETCD_BIN=${override} is not an executable file`);
    }
    cachedBinary = override;
    return override;
  }
  const candidates = ['/usr/bin/etcd'];
  for (const dir of (process.env.PATH ?? '').split(delimiter))
    if (dir) candidates.push(join(dir, 'etcd'));
  for (const c of candidates) {
    if (isExecutableFile(c)) {
      cachedBinary = c;
      return c;
    }
  }
  throw new Error(
    'etcd binary not found (looked at $AMALGAM_ETCD_BIN, /usr/bin/etcd and $PATH). ' +
      'The tests need a real etcd 3.4+: install it with `apt-get install etcd-server`.',
  );
}

// ---------------------------------------------------------------------------------------------
// Leftovers of test processes that were SIGKILLed (their etcd died with them thanks to
// --pdeathsig, but nobody removed the temp root). The root's name carries the owner's pid.

const ROOT_PREFIX = 'amalgam-etcd-';
let swept = false;

function sweepStaleRoots(): void {
  if (swept) return;
  swept = true;
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^amalgam-etcd-(\d+)-/.exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || pidExists(owner)) continue;
    try {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    } catch {
      // not ours to remove (other user) or already gone
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

interface HttpReply {
  status: number;
  body: string;
}

/** The client credential of the cluster being spoken to (https URLs only). */
type ClientPem = EtcdPem | undefined;

function httpCall(
  url: string,
  method: 'GET' | 'POST',
  body: string | undefined,
  timeoutMs: number,
  pem: ClientPem,
) {
  return new Promise<HttpReply>((resolve, reject) => {
    const options: RequestOptions & { ca?: string; cert?: string; key?: string } = {
      method,
      agent: false,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(pem ? { ca: pem.ca, cert: pem.cert, key: pem.key } : {}),
    };
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, options, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        data += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function isHealthy(clientUrl: string, pem: ClientPem, timeoutMs = 1_000): Promise<boolean> {
  try {
    const r = await httpCall(`${clientUrl}/health`, 'GET', undefined, timeoutMs, pem);
    return r.status === 200 && (JSON.parse(r.body) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

async function acceptsConnections(clientUrl: string, pem: ClientPem): Promise<boolean> {
  try {
    await httpCall(`${clientUrl}/version`, 'GET', undefined, 1_000, pem);
    return true;
  } catch {
    return false;
  }
}

interface StatusReply {
  header?: { member_id?: string };
  leader?: string;
}

async function memberStatus(clientUrl: string, pem: ClientPem): Promise<StatusReply | undefined> {
  try {
    // grpc-gateway: uint64 fields come back as decimal strings.
    const r = await httpCall(`${clientUrl}/v3/maintenance/status`, 'POST', '{}', 500, pem);
    if (r.status !== 200) return undefined;
    return JSON.parse(r.body) as StatusReply;
  } catch {
    return undefined;
  }
}

/**
 * The log of the latest start of a member (after the harness marker): all of it when short,
 * otherwise its head (flag errors, usage) and its tail (fatal errors).
 */
function startupLog(file: string): string {
  const text = tailFile(file, 1_000, 64 * 1024);
  const lines = text.split('\n');
  let from = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]?.startsWith(START_MARKER)) {
      from = i;
      break;
    }
  }
  const section = lines.slice(from);
  if (section.length <= 40) return section.join('\n');
  return [...section.slice(0, 8), '  [...]', ...section.slice(-25)].join('\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function tailFile(file: string, lines = 20, maxBytes = 16_384): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = statSync(file).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    const all = buf.toString('utf8').split('\n');
    if (all.at(-1) === '') all.pop();
    return all.slice(-lines).join('\n');
  } catch (err) {
    return `<cannot read ${file}: ${(err as Error).message}>`;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The parent's environment without ETCD_* variables, which etcd would read as flags. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('ETCD_') && k !== 'ETCD_UNSUPPORTED_ARCH') continue;
    env[k] = v;
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// The cluster

interface MemberState {
  name: string;
  clientPort: number;
  peerPort: number;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logFile: string;
  child: ChildProcess | undefined;
  paused: boolean;
  starts: number;
}

class StartupError extends Error {
  constructor(
    message: string,
    readonly portClash: boolean,
  ) {
    super(message);
  }
}

export async function startEtcdCluster(opts: StartEtcdClusterOptions = {}): Promise<EtcdCluster> {
  const size = opts.size ?? 1;
  const heartbeat = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const election = opts.electionTimeoutMs ?? DEFAULT_ELECTION_MS;
  if (!Number.isInteger(size) || size < 1) throw new Error(`invalid cluster size ${size}`);
  if (election < 5 * heartbeat) {
    throw new Error(
      `etcd requires election timeout >= 5 x heartbeat (got election ${election} ms, heartbeat ${heartbeat} ms)`,
    );
  }
  const binary = findEtcdBinary();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binary, size, heartbeat, election, opts);
    } catch (err) {
      // A port we picked can be taken (by anyone) between our probe and etcd's bind: retry.
      if (err instanceof StartupError && err.portClash && attempt < PORT_RETRIES) continue;
      throw err;
    }
  }
}

async function startOnce(
  binary: string,
  size: number,
  heartbeat: number,
  election: number,
  opts: StartEtcdClusterOptions,
): Promise<EtcdCluster> {
  const token = `amalgam-test-${process.pid}-${randomBytes(6).toString('hex')}`;
  if (opts.logDir) await mkdir(opts.logDir, { recursive: true });
  const ports = await freePorts(size * 2);
  sweepStaleRoots();
  const root = await mkdtemp(join(tmpdir(), `${ROOT_PREFIX}${process.pid}-`));
  const tracked: Tracked = { root, children: new Set() };
  ownedGroups.add(tracked);
  installHandlers();
  const pki = opts.tls === false ? undefined : await createEtcdTestPki(await pkiDir(root));
  const scheme = pki ? 'https' : 'http';
  const pem = pki?.clientPem;
  const members: MemberState[] = [];
  for (let i = 0; i < size; i++) {
    const name = `m${i}`;
    const clientPort = ports[2 * i] as number;
    const peerPort = ports[2 * i + 1] as number;
    members.push({
      name,
      clientPort,
      peerPort,
      clientUrl: `${scheme}://127.0.0.1:${clientPort}`,
      peerUrl: `${scheme}://127.0.0.1:${peerPort}`,
      // Not created here: etcd creates it with mode 0700 and would warn about a foreign log file
      // inside it ("found invalid file under data directory"), so the log lives next to it.
      dataDir: join(root, name),
      logFile: opts.logDir ? join(opts.logDir, `${token}-${name}.log`) : join(root, `${name}.log`),
      child: undefined,
      paused: false,
      starts: 0,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');

  const argsFor = (m: MemberState, state: 'new' | 'existing'): string[] => [
    '--name',
    m.name,
    '--data-dir',
    m.dataDir,
    '--listen-client-urls',
    m.clientUrl,
    '--advertise-client-urls',
    m.clientUrl,
    '--listen-peer-urls',
    m.peerUrl,
    '--initial-advertise-peer-urls',
    m.peerUrl,
    '--initial-cluster',
    initialCluster,
    '--initial-cluster-state',
    state,
    '--initial-cluster-token',
    token,
    '--heartbeat-interval',
    String(heartbeat),
    '--election-timeout',
    String(election),
    '--enable-v2=false',
    '--logger',
    'zap',
    '--log-outputs',
    'stderr',
    '--log-level',
    'warn',
    ...(pki?.memberArgs ?? []),
    ...(opts.extraArgs ?? []),
  ];

  const spawnMember = (m: MemberState, state: 'new' | 'existing'): void => {
    m.starts++;
    appendFileSync(
      m.logFile,
      `${START_MARKER} #${m.starts} of ${m.name} (initial-cluster-state ${state}) at ${new Date().toISOString()}\n`,
    );
    const fd = openSync(m.logFile, 'a');
    let child: ChildProcess;
    try {
      const args = argsFor(m, state);
      const setpriv = findSetpriv();
      // setpriv execs etcd in place, so the pid we get is etcd's own pid.
      child = setpriv
        ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args], {
            stdio: ['ignore', 'ignore', fd],
            env: childEnv(),
          })
        : spawn(binary, args, { stdio: ['ignore', 'ignore', fd], env: childEnv() });
    } finally {
      closeSync(fd);
    }
    m.child = child;
    m.paused = false;
    tracked.children.add(child);
    child.on('error', () => {
      // spawn failures surface as an early exit in the readiness wait
    });
    child.once('exit', () => {
      tracked.children.delete(child);
    });
    // Do not keep the test process alive for etcd: a forgotten destroy() then ends in the
    // 'exit' handler instead of a hang until the tap timeout.
    child.unref();
  };

  const waitExit = async (child: ChildProcess, timeoutMs: number): Promise<boolean> => {
    if (!isAlive(child)) return true;
    child.ref();
    try {
      return await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    } finally {
      child.unref();
    }
  };

  const waitReady = async (
    m: MemberState,
    deadline: number,
    check: (url: string, pem: ClientPem) => Promise<boolean>,
  ): Promise<void> => {
    const child = m.child;
    for (;;) {
      if (!child || !isAlive(child)) {
        const tail = startupLog(m.logFile);
        const how = child ? `code ${child.exitCode}, signal ${child.signalCode}` : 'never started';
        throw new StartupError(
          `etcd member ${m.name} (${m.clientUrl}) exited during startup (${how}). Log ${m.logFile}:\n${tail}`,
          /address already in use/.test(tail),
        );
      }
      if (await check(m.clientUrl, pem)) return;
      if (Date.now() > deadline) {
        throw new StartupError(
          `etcd member ${m.name} (${m.clientUrl}) not healthy after ${startTimeout} ms. Log ${m.logFile}:\n${startupLog(m.logFile)}`,
          false,
        );
      }
      await sleep(25);
    }
  };

  const memberAt = (i: number): MemberState => {
    const m = members[i];
    if (!m) throw new RangeError(`no member ${i} (cluster of ${members.length})`);
    return m;
  };

  const signalMember = (m: MemberState, signal: NodeJS.Signals): void => {
    if (m.child?.pid === undefined || !isAlive(m.child)) return;
    try {
      process.kill(m.child.pid, signal);
    } catch {
      // exited in between
    }
  };

  const kill = async (i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const m = memberAt(i);
    const child = m.child;
    if (!child || !isAlive(child)) return;
    signalMember(m, signal);
    // A stopped process does not act on SIGTERM & co. until it is continued.
    if (m.paused && signal !== 'SIGKILL') signalMember(m, 'SIGCONT');
    m.paused = false;
    if (!(await waitExit(child, STOP_GRACE_MS))) {
      signalMember(m, 'SIGKILL');
      await waitExit(child, STOP_GRACE_MS);
    }
  };

  let destroyed: Promise<void> | undefined;
  const startTimeout = patient(opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);

  const cluster: EtcdCluster = {
    members: members.map((m) => ({
      name: m.name,
      clientUrl: m.clientUrl,
      peerUrl: m.peerUrl,
      dataDir: m.dataDir,
      logFile: m.logFile,
      pid: () => (m.child && isAlive(m.child) ? m.child.pid : undefined),
      running: () => m.child !== undefined && isAlive(m.child),
    })),
    endpoints: () => members.map((m) => m.clientUrl),
    tls: pki,
    storeOptions: () => ({
      endpoints: members.map((m) => m.clientUrl),
      ...(pki ? { credentials: pki.credentials } : {}),
    }),
    storeConfig: () => ({
      backend: 'etcd',
      endpoints: members.map((m) => m.clientUrl),
      ...(pki ? { tls: pki.clientFiles } : {}),
    }),
    kill,
    stop: (i) => kill(i, 'SIGTERM'),
    pause(i) {
      const m = memberAt(i);
      if (!m.child || !isAlive(m.child)) throw new Error(`member ${m.name} is not running`);
      signalMember(m, 'SIGSTOP');
      m.paused = true;
    },
    resume(i) {
      const m = memberAt(i);
      signalMember(m, 'SIGCONT');
      m.paused = false;
    },
    async restart(i, restartOpts = {}) {
      if (destroyed) throw new Error('cluster destroyed');
      const m = memberAt(i);
      await kill(i, 'SIGTERM');
      const check = restartOpts.waitHealthy === false ? acceptsConnections : isHealthy;
      for (let attempt = 1; ; attempt++) {
        spawnMember(m, 'existing');
        try {
          await waitReady(m, Date.now() + startTimeout, check);
          return;
        } catch (err) {
          await kill(i);
          // Our ports are not reserved while the member is down; someone may hold one briefly.
          if (err instanceof StartupError && err.portClash && attempt < PORT_RETRIES) {
            await sleep(200 * attempt);
            continue;
          }
          throw err;
        }
      }
    },
    async leaderIndex() {
      const deadline = Date.now() + Math.max(5_000, 10 * election);
      for (;;) {
        const statuses = await Promise.all(
          members.map((m) =>
            m.child && isAlive(m.child) && !m.paused ? memberStatus(m.clientUrl, pem) : undefined,
          ),
        );
        const ids = statuses.map((s) => s?.header?.member_id);
        for (const s of statuses) {
          if (!s?.leader || s.leader === '0') continue;
          const idx = ids.indexOf(s.leader);
          if (idx >= 0) return idx;
        }
        if (Date.now() > deadline) {
          throw new Error(
            `no leader among the reachable members of ${members.map((m) => m.name).join(', ')}`,
          );
        }
        await sleep(50);
      }
    },
    logTail: (i, lines = 20) => tailFile(memberAt(i).logFile, lines),
    destroy() {
      destroyed ??= (async () => {
        await Promise.all(members.map((_, i) => kill(i, 'SIGKILL')));
        await rm(root, { recursive: true, force: true, maxRetries: 3 });
        ownedGroups.delete(tracked);
        if (ownedGroups.size === 0) uninstallHandlers();
      })();
      return destroyed;
    },
  };

  try {
    for (const m of members) spawnMember(m, 'new');
    const deadline = Date.now() + startTimeout;
    await Promise.all(members.map((m) => waitReady(m, deadline, isHealthy)));
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}

async function pkiDir(root: string): Promise<string> {
  const dir = join(root, 'pki');
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

// Exported for the harness self-test.
export const _internal = { liveClusterCount: (): number => ownedGroups.size };
