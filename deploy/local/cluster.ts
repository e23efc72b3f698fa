/**
 * A local multi-machine cluster: N control-plane machines (an etcd member + clusterd each) and
 * M workers (clusteragent with its page server), each machine a network namespace (net.ts).
 *
 * It is built the way an operator builds a real one:
 *  - c0 starts a one-member etcd, `clusteradm init --store etcd --no-start` writes the CA, the
 *    admin credential and clusterd's config, and clusterd starts;
 *  - each next control machine runs `clusteradm join --control-plane` in its namespace: etcd
 *    grows by `member add` (never a second cluster), then that machine's etcd starts with
 *    `--initial-cluster-state existing` and its own clusterd on its own address;
 *  - workers join with `clusteradm token create` (on the host, as admin) and `clusteradm join`
 *    (inside the worker's namespace), then run `clusteragent --config <home>/agent.json`.
 * deploy/local supervises the daemons itself (`--no-start`, `--no-agent`) so it can kill,
 * pause and restart them.
 *
 * Everything the cluster made is recorded in `<stateDir>/state.json` as it is made, so `down`
 * (or a test's teardown) removes exactly that: processes (by process group, checked by an
 * environment marker so a recycled pid is never signalled), namespaces, the host link, the
 * subnet claim, the state directory.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  blockPeers,
  claimSubnet,
  clearNetem,
  createMachine,
  createSwitch,
  destroyNetwork,
  type Netem,
  type NetworkPlan,
  nsName,
  planNetwork,
  setNetem,
  unblockAll,
} from './net.ts';

const execFileAsync = promisify(execFile);
export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CLUSTERADM = join(REPO, 'bin/clusteradm.mjs');
const CLUSTERD = join(REPO, 'bin/clusterd.mjs');
const CLUSTERAGENT = join(REPO, 'bin/clusteragent.mjs');
const MARKER = 'AMALGAM_LOCAL_CLUSTER';

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** etcd's plain-http listener for /metrics and /health only (no keys): Prometheus scrapes it. */
export const ETCD_METRICS_PORT = 2381;
export const CLUSTERD_PORT = 6443;
export const AGENT_METRICS_PORT = 9464;
export const PAGESERVER_PORT = 7070;

export type Role = 'control' | 'worker';
/** etcd, clusterd and agent are what `up` starts; a test may run more (startProcess). */
export type DaemonName = 'etcd' | 'clusterd' | 'agent' | (string & {});

export interface DaemonState {
  /** Process id and process group id (daemons are session leaders). 0 when not running. */
  pid: number;
  argv: string[];
  log: string;
}

export interface MachineState {
  name: string;
  role: Role;
  ns: string;
  ip: string;
  dir: string;
  daemons: Partial<Record<DaemonName, DaemonState>>;
}

export interface ClusterState {
  id: string;
  stateDir: string;
  /** A test process whose death frees everything (its teardown); 0 for `up` from a shell. */
  owner: number;
  /** Start daemons under `setpriv --pdeathsig KILL` so they die with `owner`. */
  tied: boolean;
  network: NetworkPlan;
  machines: MachineState[];
  adminHome: string;
  caCertHash: string;
  controlUrls: string[];
  etcdEndpoints: string[];
  options: UpOptions;
}

export interface UpOptions {
  control: number;
  workers: number;
  /** etcd `--heartbeat-interval` / `--election-timeout` in ms (default 100 / 1000, etcd's own). */
  etcdHeartbeatMs?: number;
  etcdElectionMs?: number;
  /** clusterd `nodeGraceSeconds`; default 10. */
  nodeGraceSeconds?: number;
  /** Bytes each worker contributes to the network memory space; default 256 MiB. */
  contributeBytes?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** How long to wait for each step; default 90 s. */
  timeoutMs?: number;
  /** Only the machines and their network: no etcd, clusterd or agent (tests run their own). */
  bare?: boolean;
}

export interface CreateOptions extends UpOptions {
  id?: string;
  /** Default `$AMALGAM_LOCAL_STATE` or `/tmp/amalgam-local`, then `/<id>`. */
  stateRoot?: string;
  owner?: number;
  tied?: boolean;
}

export function defaultStateRoot(): string {
  return process.env.AMALGAM_LOCAL_STATE || '/tmp/amalgam-local';
}

export function newClusterId(): string {
  return randomBytes(3).toString('hex');
}

export function saveState(state: ClusterState): void {
  const tmp = join(state.stateDir, 'state.json.tmp');
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  // rename is atomic: a reader never sees half a file.
  renameSync(tmp, join(state.stateDir, 'state.json'));
}

export function loadState(stateDir: string): ClusterState {
  return JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as ClusterState;
}

// ---------------------------------------------------------------------------------------------
// Processes

function findSetpriv(): string | undefined {
  return ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
}

/** True when `pid` is alive and is one of this cluster's daemons (not a recycled pid). */
export function daemonAlive(state: ClusterState, pid: number): boolean {
  if (pid <= 0) return false;
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    if (!environ.split('\0').includes(`${MARKER}=${state.id}`)) return false;
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // state is the field after the ")" of the command name; Z is a zombie (dead).
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const children = new Map<number, ChildProcess>();

function startDaemon(state: ClusterState, m: MachineState, name: DaemonName, argv: string[]): void {
  const log = join(m.dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env, [MARKER]: state.id };
  delete env.NODE_OPTIONS; // tap's coverage hooks must not follow into the daemons
  for (const k of Object.keys(env)) if (k.startsWith('ETCD_')) delete env[k];
  const inNs = ['ip', 'netns', 'exec', m.ns, ...argv];
  const setpriv = state.tied ? findSetpriv() : undefined;
  const command = setpriv ? [setpriv, '--pdeathsig', 'KILL', '--', ...inNs] : inNs;
  let child: ChildProcess;
  try {
    writeFileSync(fd, `--- start ${argv.join(' ')} at ${new Date().toISOString()}\n`);
    child = spawn(command[0] as string, command.slice(1), {
      detached: true,
      stdio: ['ignore', fd, fd],
      env,
      cwd: m.dir,
    });
  } finally {
    closeSync(fd);
  }
  child.on('error', () => {});
  child.unref();
  const pid = child.pid ?? 0;
  children.set(pid, child);
  child.once('exit', () => children.delete(pid));
  m.daemons[name] = { pid, argv, log };
  saveState(state);
}

async function waitGone(state: ClusterState, pid: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (daemonAlive(state, pid) && Date.now() < deadline) await sleep(20);
}

function signalGroup(state: ClusterState, pid: number, signal: NodeJS.Signals): boolean {
  if (!daemonAlive(state, pid)) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// HTTP probes (from the host, through the bridge)

/** The etcd CA and clusterd's etcd client certificate: etcd answers nobody without one. */
export interface EtcdClientPem {
  ca: string;
  cert: string;
  key: string;
}

/** The admin home's etcd client credential (`clusteradm init --store etcd` wrote it). */
export function etcdClientPem(state: ClusterState): EtcdClientPem {
  const dir = join(state.adminHome, 'pki', 'etcd');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    ca: read('ca.crt'),
    cert: read('clusterd-client.crt'),
    key: read('clusterd-client.key'),
  };
}

function httpGet(
  url: string,
  ca?: string | EtcdClientPem,
  timeoutMs = 2_000,
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const doRequest = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = doRequest(
      url,
      {
        method: body === undefined ? 'GET' : 'POST',
        agent: false,
        timeout: timeoutMs,
        ...(typeof ca === 'string' ? { ca } : (ca ?? {})),
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          data += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export { httpGet };

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  log?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${log ? `\n${log()}` : ''}`);
    await sleep(200);
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no ${file})`;
  }
}

export async function etcdHealthy(state: ClusterState, ip: string): Promise<boolean> {
  try {
    const pem = etcdClientPem(state);
    const r = await httpGet(`https://${ip}:${ETCD_CLIENT_PORT}/health`, pem, 1_500);
    return r.status === 200 && (JSON.parse(r.body) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** etcd's maintenance status of the member at `ip` (its id, and the leader it sees). */
export async function etcdStatus(
  state: ClusterState,
  ip: string,
): Promise<{ memberId: string; leader: string } | undefined> {
  try {
    const r = await httpGet(
      `https://${ip}:${ETCD_CLIENT_PORT}/v3/maintenance/status`,
      etcdClientPem(state),
      1_000,
      '{}',
    );
    if (r.status !== 200) return undefined;
    const s = JSON.parse(r.body) as { header?: { member_id?: string }; leader?: string };
    if (!s.header?.member_id || !s.leader) return undefined;
    return { memberId: s.header.member_id, leader: s.leader };
  } catch {
    return undefined;
  }
}

export async function etcdMembers(
  state: ClusterState,
  ip: string,
): Promise<{ ID: string; name: string; peerURLs: string[] }[]> {
  const r = await httpGet(
    `https://${ip}:${ETCD_CLIENT_PORT}/v3/cluster/member/list`,
    etcdClientPem(state),
    2_000,
    '{}',
  );
  if (r.status !== 200) throw new Error(`member list: ${r.status} ${r.body}`);
  return (
    (JSON.parse(r.body) as { members?: { ID: string; name?: string; peerURLs: string[] }[] })
      .members ?? []
  ).map((m) => ({ ID: m.ID, name: m.name ?? '', peerURLs: m.peerURLs }));
}

export async function clusterdReady(state: ClusterState, ip: string): Promise<boolean> {
  try {
    const ca = readFileSync(join(state.adminHome, 'pki', 'ca.crt'), 'utf8');
    return (await httpGet(`https://${ip}:${CLUSTERD_PORT}/readyz`, ca, 2_000)).status === 200;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Building the cluster

async function clusteradm(
  state: ClusterState,
  ns: string | undefined,
  args: string[],
): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  const argv = [process.execPath, CLUSTERADM, ...args];
  const [cmd, ...rest] = ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
  try {
    const { stdout } = await execFileAsync(cmd as string, rest, {
      env,
      cwd: state.stateDir,
      timeout: 120_000,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(
      `clusteradm ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`,
    );
  }
}

/** etcd's flags from the environment file `clusteradm join --control-plane` writes (ETCD_X_Y -> --x-y). */
function etcdFlagsFromEnvironment(text: string): string[] {
  const flags: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^ETCD_([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) flags.push(`--${(m[1] as string).toLowerCase().replace(/_/g, '-')}=${m[2]}`);
  }
  return flags;
}

/**
 * The control plane, machine by machine, as an operator builds it:
 *  - c0: `clusteradm init --store etcd --no-start` (the CAs, c0's etcd certificates and
 *    etcd.env of a new one-member etcd), that etcd (https only, client certificates), clusterd;
 *  - each next machine: `clusteradm join --control-plane --no-start` inside its namespace (etcd
 *    `member add`, etcd.env, a server certificate, clusterd.json), then its etcd (flags from
 *    etcd.env, `--initial-cluster-state existing`) and its clusterd;
 *  - finally c0's clusterd is pointed at every member (its config named only its own).
 */
async function startControlPlane(state: ClusterState, timeoutMs: number): Promise<void> {
  const control = state.machines.filter((m) => m.role === 'control');
  const first = control[0] as MachineState;
  const o = state.options;
  const timing = [
    '--heartbeat-interval',
    String(o.etcdHeartbeatMs ?? 100),
    '--election-timeout',
    String(o.etcdElectionMs ?? 1000),
    '--logger',
    'zap',
    '--log-outputs',
    'stderr',
  ];
  // `clusteradm init` on c0, as its operator would run it (files only; we supervise the daemons):
  // the cluster CA, the etcd CA and c0's etcd certificates, etcd.env for a new one-member etcd.
  const out = await clusteradm(state, first.ns, [
    'init',
    '--home',
    state.adminHome,
    '--name',
    `local-${state.id}`,
    '--listen',
    `0.0.0.0:${CLUSTERD_PORT}`,
    '--advertise-address',
    first.ip,
    '--store',
    'etcd',
    '--etcd-name',
    first.name,
    '--etcd-endpoints',
    `https://${first.ip}:${ETCD_CLIENT_PORT}`,
    '--no-start',
    '-o',
    'json',
  ]);
  const firstFlags = etcdFlagsFromEnvironment(
    readFileSync(join(state.adminHome, 'etcd.env'), 'utf8'),
  );
  startDaemon(state, first, 'etcd', ['etcd', ...firstFlags, ...timing]);
  await waitFor(
    `etcd on ${first.name}`,
    () => etcdHealthy(state, first.ip),
    timeoutMs,
    () => tail(join(first.dir, 'etcd.log')),
  );
  state.caCertHash = (JSON.parse(out) as { caCertHash: string }).caCertHash;
  const configFile = (m: MachineState) =>
    m === first ? join(state.adminHome, 'clusterd.json') : join(m.dir, 'home', 'clusterd.json');
  const editConfig = (m: MachineState, edit: (c: Record<string, unknown>) => void) => {
    const c = JSON.parse(readFileSync(configFile(m), 'utf8')) as Record<string, unknown>;
    edit(c);
    writeFileSync(configFile(m), JSON.stringify(c, null, 2), { mode: 0o600 });
  };
  const grace = o.nodeGraceSeconds ?? 10;
  editConfig(first, (c) => {
    c.nodeGraceSeconds = grace;
  });
  // The admin configuration names every replica, so clusteradm fails over between them.
  const adminFile = join(state.adminHome, 'admin.json');
  const admin = JSON.parse(readFileSync(adminFile, 'utf8')) as Record<string, unknown>;
  admin.server = state.controlUrls;
  writeFileSync(adminFile, JSON.stringify(admin, null, 2), { mode: 0o600 });
  saveState(state);
  const startClusterd = async (m: MachineState) => {
    startDaemon(state, m, 'clusterd', [process.execPath, CLUSTERD, '--config', configFile(m)]);
    await waitFor(
      `clusterd on ${m.name}`,
      () => clusterdReady(state, m.ip),
      timeoutMs,
      () => tail(join(m.dir, 'clusterd.log')),
    );
  };
  await startClusterd(first);

  const members = [first];
  for (const m of control.slice(1)) {
    const home = join(m.dir, 'home');
    await clusteradm(state, m.ns, [
      'join',
      `https://${first.ip}:${CLUSTERD_PORT}`,
      '--control-plane',
      '--ca-cert-hash',
      state.caCertHash,
      '--pki-dir',
      join(state.adminHome, 'pki'),
      '--advertise-address',
      m.ip,
      '--etcd-endpoints',
      members.map((x) => `https://${x.ip}:${ETCD_CLIENT_PORT}`).join(','),
      '--name',
      m.name,
      '--home',
      home,
      '--no-start',
      '-o',
      'json',
    ]);
    const flags = etcdFlagsFromEnvironment(readFileSync(join(home, 'etcd.env'), 'utf8'));
    startDaemon(state, m, 'etcd', ['etcd', ...flags, ...timing]);
    await waitFor(
      `etcd on ${m.name}`,
      () => etcdHealthy(state, m.ip),
      timeoutMs,
      () => tail(join(m.dir, 'etcd.log')),
    );
    members.push(m);
    editConfig(m, (c) => {
      c.nodeGraceSeconds = grace;
    });
    await startClusterd(m);
  }
  if (control.length > 1) {
    editConfig(first, (c) => {
      c.store = { ...(c.store as object), backend: 'etcd', endpoints: state.etcdEndpoints };
    });
    await kill(state, first.name, 'clusterd', 'SIGTERM');
    await startClusterd(first);
  }
}

/** `clusteradm token create --print-join-command` on the host, as the admin. */
async function joinCommand(state: ClusterState): Promise<string[]> {
  const line = await clusteradm(state, undefined, [
    'token',
    'create',
    '--print-join-command',
    '--description',
    'deploy/local workers',
    '--home',
    state.adminHome,
  ]);
  return line.trim().split(/\s+/); // clusteradm join URL --token T --ca-cert-hash H
}

async function joinWorker(state: ClusterState, m: MachineState, words: string[]): Promise<void> {
  const home = join(m.dir, 'home');
  await clusteradm(state, m.ns, [
    ...words.slice(1),
    '--name',
    m.name,
    '--home',
    home,
    '--contribute',
    String(state.options.contributeBytes ?? 256 * 1024 * 1024),
    '--no-agent',
    '-o',
    'json',
  ]);
  // What an operator adds to agent.json on a real machine: every replica, and the page server
  // and metrics on the machine's own address (mutual TLS with the node certificate).
  const agentFile = join(home, 'agent.json');
  const agent = JSON.parse(readFileSync(agentFile, 'utf8')) as Record<string, unknown>;
  Object.assign(agent, {
    server: state.controlUrls,
    heartbeatSeconds: 2,
    metricsHost: m.ip,
    metricsPort: AGENT_METRICS_PORT,
    pageserver: {
      listenHost: m.ip,
      listenPort: PAGESERVER_PORT,
      tls: true,
      plaintextLoopback: false,
    },
  });
  writeFileSync(agentFile, JSON.stringify(agent, null, 2));
  startDaemon(state, m, 'agent', [process.execPath, CLUSTERAGENT, '--config', agentFile]);
}

/** Creates the network and every machine, and starts and joins them. Returns the state. */
export async function up(options: CreateOptions): Promise<ClusterState> {
  if (options.control < 1 || options.control > 9 || options.workers < 0 || options.workers > 9) {
    throw new Error('between 1 and 9 control machines and 0 to 9 workers');
  }
  const id = options.id ?? newClusterId();
  if (!/^[a-z0-9]{1,8}$/.test(id)) throw new Error(`cluster id ${id}: 1 to 8 of [a-z0-9]`);
  const stateDir = join(options.stateRoot ?? defaultStateRoot(), id);
  if (existsSync(join(stateDir, 'state.json')))
    throw new Error(`${stateDir} already holds a cluster; run down first`);
  mkdirSync(stateDir, { recursive: true });
  const owner = options.owner ?? 0;
  const subnet = claimSubnet(id, owner, stateDir);
  const network = planNetwork(id, subnet);
  const { log: progress, ...upOptions } = options;
  const say = progress ?? (() => {});
  const machines: MachineState[] = [];
  for (let i = 0; i < options.control; i++) {
    machines.push({
      name: `c${i}`,
      role: 'control',
      ns: nsName(id, `c${i}`),
      ip: `${subnet}.${10 + i}`,
      dir: join(stateDir, `c${i}`),
      daemons: {},
    });
  }
  for (let i = 0; i < options.workers; i++) {
    machines.push({
      name: `w${i}`,
      role: 'worker',
      ns: nsName(id, `w${i}`),
      ip: `${subnet}.${20 + i}`,
      dir: join(stateDir, `w${i}`),
      daemons: {},
    });
  }
  const control = machines.filter((m) => m.role === 'control');
  const state: ClusterState = {
    id,
    stateDir,
    owner,
    tied: options.tied ?? false,
    network,
    machines,
    adminHome: join(stateDir, 'admin'),
    caCertHash: '',
    controlUrls: control.map((m) => `https://${m.ip}:${CLUSTERD_PORT}`),
    etcdEndpoints: control.map((m) => `https://${m.ip}:${ETCD_CLIENT_PORT}`),
    options: { ...upOptions },
  };
  saveState(state);
  const timeoutMs = options.timeoutMs ?? 90_000;
  try {
    say(
      `network ${subnet}.0/24: switch ${network.switchNs}, host link ${network.hostIf} ${network.hostIp}`,
    );
    createSwitch(network);
    for (const m of machines) {
      mkdirSync(m.dir, { recursive: true });
      createMachine(network, m.ns, `p-${m.name}`, m.ip);
      say(`machine ${m.name} (${m.role}): netns ${m.ns}, ${m.ip}`);
    }
    if (options.bare) return state;
    say('control plane: clusteradm init on c0, clusteradm join --control-plane on the others');
    await startControlPlane(state, timeoutMs);
    say('workers: clusteradm token create + clusteradm join, then clusteragent');
    const workers = machines.filter((m) => m.role === 'worker');
    if (workers.length > 0) {
      const words = await joinCommand(state);
      await Promise.all(workers.map((m) => joinWorker(state, m, words)));
    }
    saveState(state);
  } catch (err) {
    await down(state);
    throw err;
  }
  return state;
}

// ---------------------------------------------------------------------------------------------
// Operating on a running cluster

export function machine(state: ClusterState, name: string): MachineState {
  const m = state.machines.find((x) => x.name === name);
  if (!m)
    throw new Error(
      `no machine ${name} (machines: ${state.machines.map((x) => x.name).join(', ')})`,
    );
  return m;
}

/** Every live daemon of the machine (etcd, clusterd, agent), or only `only`. */
function daemonsOf(
  state: ClusterState,
  m: MachineState,
  only?: DaemonName,
): [DaemonName, DaemonState][] {
  return (Object.entries(m.daemons) as [DaemonName, DaemonState][]).filter(
    ([name, d]) => (only === undefined || name === only) && daemonAlive(state, d.pid),
  );
}

/** SIGKILL (or `signal`) to the machine's daemons, each with its whole process group. */
export async function kill(
  state: ClusterState,
  name: string,
  only?: DaemonName,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<string[]> {
  const m = machine(state, name);
  const killed: string[] = [];
  for (const [daemon, d] of daemonsOf(state, m, only)) {
    signalGroup(state, d.pid, 'SIGCONT');
    if (signalGroup(state, d.pid, signal)) killed.push(daemon);
    await waitGone(state, d.pid);
  }
  return killed;
}

/** Starts the machine's daemons that are not running, with the command they last ran. */
export function start(state: ClusterState, name: string, only?: DaemonName): string[] {
  const m = machine(state, name);
  const started: string[] = [];
  for (const [daemon, d] of Object.entries(m.daemons) as [DaemonName, DaemonState][]) {
    if (only !== undefined && daemon !== only) continue;
    if (daemonAlive(state, d.pid)) continue;
    startDaemon(state, m, daemon, d.argv);
    started.push(daemon);
  }
  return started;
}

/** Runs `argv` in the machine's namespace as one of its daemons (killed, paused, torn down with it). */
export function startProcess(
  state: ClusterState,
  name: string,
  daemon: DaemonName,
  argv: string[],
): number {
  const m = machine(state, name);
  startDaemon(state, m, daemon, argv);
  return m.daemons[daemon]?.pid ?? 0;
}

/** SIGSTOP every daemon of the machine: it keeps its sockets but answers nothing. */
export function pause(state: ClusterState, name: string, only?: DaemonName): string[] {
  const m = machine(state, name);
  return daemonsOf(state, m, only)
    .filter(([, d]) => signalGroup(state, d.pid, 'SIGSTOP'))
    .map(([daemon]) => daemon);
}

export function resume(state: ClusterState, name: string, only?: DaemonName): string[] {
  const m = machine(state, name);
  return daemonsOf(state, m, only)
    .filter(([, d]) => signalGroup(state, d.pid, 'SIGCONT'))
    .map(([daemon]) => daemon);
}

/**
 * Splits the machines into groups that cannot reach each other; a machine named in no group
 * joins the last one. The host still reaches every machine (clients see both sides).
 */
export function partition(state: ClusterState, groups: string[][]): string[][] {
  for (const g of groups) for (const n of g) machine(state, n);
  const named = new Set(groups.flat());
  const rest = state.machines.filter((m) => !named.has(m.name)).map((m) => m.name);
  const all =
    rest.length > 0
      ? groups.length === 1
        ? [...groups, rest]
        : [...groups.slice(0, -1), [...(groups.at(-1) ?? []), ...rest]]
      : groups;
  heal(state);
  for (const g of all) {
    const others = state.machines.filter((m) => !g.includes(m.name)).map((m) => m.ip);
    for (const n of g) blockPeers(machine(state, n).ns, others);
  }
  return all;
}

export function heal(state: ClusterState): void {
  for (const m of state.machines) unblockAll(m.ns);
}

export function netem(state: ClusterState, names: string[], settings: Netem | 'clear'): void {
  for (const n of names) {
    const m = machine(state, n);
    if (settings === 'clear') clearNetem(m.ns);
    else setNetem(m.ns, settings);
  }
}

/** Every process (SIGKILL, whole groups), every namespace, the host link, the claim, the state dir. */
export async function down(state: ClusterState, keepState = false): Promise<void> {
  downSync(state, keepState);
}

export function downSync(state: ClusterState, keepState = false): void {
  const pids: number[] = [];
  for (const m of state.machines) {
    for (const d of Object.values(m.daemons)) {
      if (d && signalGroup(state, d.pid, 'SIGCONT') && signalGroup(state, d.pid, 'SIGKILL'))
        pids.push(d.pid);
    }
  }
  const deadline = Date.now() + 5_000;
  while (pids.some((p) => daemonAlive(state, p)) && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  destroyNetwork(
    state.network,
    state.machines.map((m) => m.ns),
  );
  if (!keepState) rmSync(state.stateDir, { recursive: true, force: true });
}

/** One line per machine: its address and which daemons are up, paused or down. */
export function status(state: ClusterState): string[] {
  return state.machines.map((m) => {
    const daemons = (Object.entries(m.daemons) as [DaemonName, DaemonState][]).map(([name, d]) => {
      if (!daemonAlive(state, d.pid)) return `${name}:down`;
      const stat = readFileSync(`/proc/${d.pid}/stat`, 'latin1');
      const paused = stat.slice(stat.lastIndexOf(')') + 2)[0] === 'T';
      return `${name}:${paused ? 'paused' : `up(pid ${d.pid})`}`;
    });
    return `${m.name.padEnd(4)} ${m.role.padEnd(8)} ${m.ip.padEnd(14)} ${m.ns.padEnd(22)} ${daemons.join(' ')}`;
  });
}
