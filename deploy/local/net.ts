/**
 * The network of a local cluster: every machine is a Linux network namespace with one veth
 * (`eth0`) plugged into a bridge, and its own address in a private /24.
 *
 *   root ns ── am<id> (10.213.N.1) ─┐
 *                                    │  amalgam-<id>-sw: bridge br0 (no address)
 *   amalgam-<id>-c0  eth0 10.213.N.10 ┤
 *   amalgam-<id>-w0  eth0 10.213.N.20 ┘
 *
 * The bridge lives in its own "switch" namespace, so the host's firewall (Docker's FORWARD
 * policy, br_netfilter) never sees the cluster's traffic, and every interface name except the
 * host's `am<id>` is local to a namespace: two clusters never collide. The /24 is claimed with
 * an exclusive file in /run/amalgam-local, so concurrent clusters get different subnets.
 *
 * Faults are applied inside the machine's own namespace, so they touch nothing else:
 * a partition is DROP rules in an `AMALGAM` iptables chain; delay and loss are a `tc netem`
 * qdisc on its eth0 (loss is an iptables `statistic` rule where the kernel lacks netem).
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';

export const CLAIM_DIR = '/run/amalgam-local';
const SUBNET_PREFIX = '10.213';

export interface NetworkPlan {
  id: string;
  /** `10.213.N` */
  subnet: string;
  switchNs: string;
  hostIf: string;
  hostIp: string;
}

/** Runs a command; its stderr becomes the error message. */
export function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(input === undefined ? {} : { input }),
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/** Like run, but a failure is ignored (teardown of what may already be gone). */
export function tryRun(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function nsName(id: string, machine: string): string {
  return `amalgam-${id}-${machine}`;
}

export function ipIn(ns: string, args: string[]): string {
  return run('ip', ['-n', ns, ...args]);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Claim {
  id: string;
  /** The process whose death frees the claim (tests); 0 for clusters made by `up`. */
  owner: number;
  stateDir: string;
}

function readClaim(file: string): Claim | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Claim;
  } catch {
    return undefined;
  }
}

/** Claims a free /24: an exclusive claim file, and no route of the host already covers it. */
export function claimSubnet(id: string, owner: number, stateDir: string): string {
  mkdirSync(CLAIM_DIR, { recursive: true });
  const routes = run('ip', ['-4', 'route', 'show']);
  for (let n = 1; n < 255; n++) {
    const subnet = `${SUBNET_PREFIX}.${n}`;
    if (routes.includes(`${subnet}.`)) continue;
    const file = `${CLAIM_DIR}/net-${n}`;
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch {
      continue;
    }
    writeSync(fd, JSON.stringify({ id, owner, stateDir } satisfies Claim));
    closeSync(fd);
    return subnet;
  }
  throw new Error(`no free /24 left in ${SUBNET_PREFIX}.0.0/16 (claims in ${CLAIM_DIR})`);
}

export function releaseSubnet(id: string): void {
  let names: string[];
  try {
    names = readdirSync(CLAIM_DIR);
  } catch {
    return;
  }
  for (const name of names) {
    const file = `${CLAIM_DIR}/${name}`;
    if (readClaim(file)?.id === id) rmSync(file, { force: true });
  }
}

/** Claims of test processes that died without tearing down (SIGKILL): their ids, to destroy. */
export function staleClaims(): { id: string; stateDir: string }[] {
  let names: string[];
  try {
    names = readdirSync(CLAIM_DIR);
  } catch {
    return [];
  }
  const stale: { id: string; stateDir: string }[] = [];
  for (const name of names) {
    const claim = readClaim(`${CLAIM_DIR}/${name}`);
    if (claim && claim.owner > 0 && !pidAlive(claim.owner)) stale.push(claim);
  }
  return stale;
}

export function planNetwork(id: string, subnet: string): NetworkPlan {
  return {
    id,
    subnet,
    switchNs: nsName(id, 'sw'),
    hostIf: `am${id}`,
    hostIp: `${subnet}.1`,
  };
}

/** The switch namespace with its bridge, and the host's link to it. */
export function createSwitch(plan: NetworkPlan): void {
  run('ip', ['netns', 'add', plan.switchNs]);
  ipIn(plan.switchNs, ['link', 'set', 'lo', 'up']);
  ipIn(plan.switchNs, ['link', 'add', 'br0', 'type', 'bridge']);
  ipIn(plan.switchNs, ['link', 'set', 'br0', 'up']);
  run('ip', [
    'link',
    'add',
    plan.hostIf,
    'type',
    'veth',
    'peer',
    'name',
    'host',
    'netns',
    plan.switchNs,
  ]);
  ipIn(plan.switchNs, ['link', 'set', 'host', 'master', 'br0', 'up']);
  run('ip', ['addr', 'add', `${plan.hostIp}/24`, 'dev', plan.hostIf]);
  run('ip', ['link', 'set', plan.hostIf, 'up']);
}

/** A machine: its namespace, eth0 with `ip` on the bridge, loopback, and the AMALGAM chain. */
export function createMachine(plan: NetworkPlan, ns: string, port: string, ip: string): void {
  run('ip', ['netns', 'add', ns]);
  ipIn(ns, ['link', 'set', 'lo', 'up']);
  ipIn(plan.switchNs, ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  ipIn(plan.switchNs, ['link', 'set', port, 'master', 'br0', 'up']);
  ipIn(ns, ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  ipIn(ns, ['link', 'set', 'eth0', 'up']);
  iptables(ns, ['-N', 'AMALGAM']);
  iptables(ns, ['-I', 'INPUT', '-j', 'AMALGAM']);
  iptables(ns, ['-I', 'OUTPUT', '-j', 'AMALGAM']);
  iptables(ns, ['-N', 'AMALGAM_LOSS']);
  iptables(ns, ['-A', 'OUTPUT', '-j', 'AMALGAM_LOSS']);
}

export function iptables(ns: string, args: string[]): string {
  return run('ip', ['netns', 'exec', ns, 'iptables', '-w', ...args]);
}

/** Drops every packet between this machine and each of `peers` (both directions). */
export function blockPeers(ns: string, peers: string[]): void {
  for (const peer of peers) {
    iptables(ns, ['-A', 'AMALGAM', '-s', peer, '-j', 'DROP']);
    iptables(ns, ['-A', 'AMALGAM', '-d', peer, '-j', 'DROP']);
  }
}

export function unblockAll(ns: string): void {
  iptables(ns, ['-F', 'AMALGAM']);
}

export interface Netem {
  delayMs?: number;
  jitterMs?: number;
  lossPercent?: number;
}

/** Whether this kernel has sch_netem (some VM kernels are built without it). */
let netemSupported: boolean | undefined;

function kernelHasNetem(ns: string): boolean {
  if (netemSupported !== undefined) return netemSupported;
  try {
    run('ip', [
      'netns',
      'exec',
      ns,
      'tc',
      'qdisc',
      'replace',
      'dev',
      'lo',
      'root',
      'netem',
      'delay',
      '0ms',
    ]);
    tryRun('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', 'lo', 'root']);
    netemSupported = true;
  } catch {
    netemSupported = false;
  }
  return netemSupported;
}

/**
 * Delay and loss on the machine's eth0 (what it sends). With `tc netem` when the kernel has it;
 * without sch_netem, loss falls back to an iptables `statistic` DROP rule on output, and a
 * delay is refused with an error saying why.
 */
export function setNetem(ns: string, netem: Netem): void {
  clearNetem(ns);
  if (kernelHasNetem(ns)) {
    const args = ['netem'];
    if (netem.delayMs) {
      args.push('delay', `${netem.delayMs}ms`);
      if (netem.jitterMs) args.push(`${netem.jitterMs}ms`);
    }
    if (netem.lossPercent) args.push('loss', `${netem.lossPercent}%`);
    run('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', ...args]);
    return;
  }
  if (netem.delayMs) {
    throw new Error(
      'delay needs tc netem, and this kernel has no sch_netem module (loss works without it)',
    );
  }
  if (netem.lossPercent) {
    iptables(ns, [
      '-A',
      'AMALGAM_LOSS',
      '-o',
      'eth0',
      '-m',
      'statistic',
      '--mode',
      'random',
      '--probability',
      String(netem.lossPercent / 100),
      '-j',
      'DROP',
    ]);
  }
}

export function clearNetem(ns: string): void {
  tryRun('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
  tryRun('ip', ['netns', 'exec', ns, 'iptables', '-w', '-F', 'AMALGAM_LOSS']);
}

/** Removes the namespaces (their veths go with them) and the host link. Idempotent. */
export function destroyNetwork(plan: NetworkPlan, machineNs: string[]): void {
  for (const ns of machineNs) tryRun('ip', ['netns', 'del', ns]);
  tryRun('ip', ['netns', 'del', plan.switchNs]);
  tryRun('ip', ['link', 'del', plan.hostIf]);
  releaseSubnet(plan.id);
}
