/**
 * Child processes owned by tests: start them so they die with the test
 * process (setpriv --pdeathsig), track them so an exit or signal kills them,
 * and find free loopback ports. Shared by the etcd and clusterd harnesses.
 */
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

let cachedSetpriv: string | null | undefined;

export function findSetpriv(): string | null {
  if (cachedSetpriv !== undefined) return cachedSetpriv;
  cachedSetpriv = null;
  for (const c of ['/usr/bin/setpriv', '/bin/setpriv']) {
    if (isExecutableFile(c)) {
      cachedSetpriv = c;
      break;
    }
  }
  return cachedSetpriv;
}

export function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Every child process a test group (an etcd cluster, a set of clusterd
 * replicas) owns is tracked here with its temp root, so that a test that
 * crashes or is interrupted still kills them and removes the root.
 */

export interface Tracked {
  root: string;
  children: Set<ChildProcess>;
}

export const ownedGroups = new Set<Tracked>();
let handlersInstalled = false;

function killEverythingSync(): void {
  for (const cluster of ownedGroups) {
    for (const child of cluster.children) {
      try {
        if (child.pid !== undefined && isAlive(child)) process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      rmSync(cluster.root, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort on the way out
    }
  }
  ownedGroups.clear();
}

function onExit(): void {
  killEverythingSync();
}

function onSignal(signal: NodeJS.Signals): void {
  killEverythingSync();
  uninstallHandlers();
  // Our listener suppressed the default action. Re-raise so the process still dies from the
  // signal: other listeners (e.g. signal-exit) see it again and, without us, behave as usual.
  process.kill(process.pid, signal);
}

export function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

export function uninstallHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.removeListener('exit', onExit);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
}

export function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function freePorts(n: number): Promise<number[]> {
  // Hold every listener open until all ports are known so that we never get the same port twice.
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const srv = createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') throw new Error('unexpected listen address');
      ports.push(addr.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
