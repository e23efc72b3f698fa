/**
 * remotedev-fuse, supervised: started on the mount directory (a stale mount
 * left by a killed daemon taken down first), restarted with exponential
 * back-off when it exits, told to re-read its tree file with SIGHUP, stopped
 * and unmounted on close.
 */
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { closableTimers } from './closable-timers.ts';
import type { AgentMetrics } from './metrics.ts';
import { backoffMs } from './page-server-decision.ts';
import { type RunningRemotedev, startRemotedev, unmount } from './remotedev-process.ts';

/**
 * No SIGHUP in a daemon's first half second. remotedev-fuse now holds its
 * signals from the start of main, so this is only a guard for a build that
 * installs its handler after `mounted` (a SIGHUP then would kill it; the
 * supervisor would restart it, but a reload is cheaper).
 */
const FUSE_SIGHUP_GRACE_MS = 500;
/** A daemon that ran this long starts its back-off afresh. */
const FUSE_STABLE_MS = 10_000;

export interface RemotedevSupervisorOptions {
  mountDir: string;
  treeFile: string;
  binary?: string;
  extraArgs?: string[];
  tls?: { certFile: string; keyFile: string; caFile: string };
  metrics?: AgentMetrics;
  logger: Logger;
  /** The tree file's content as last written (a change during a start is followed by a SIGHUP). */
  tree(): string;
}

export class RemotedevSupervisor {
  readonly #o: RemotedevSupervisorOptions;
  readonly #timers: ReturnType<typeof closableTimers>;
  #closed = false;
  #fuse: RunningRemotedev | null = null;
  #failures = 0;
  #hupPending = false;

  constructor(options: RemotedevSupervisorOptions) {
    this.#o = options;
    this.#timers = closableTimers(() => this.#closed);
  }

  mount(): { pid: number; dir: string } | null {
    return this.#fuse ? { pid: this.#fuse.pid, dir: this.#fuse.mount } : null;
  }

  /** The tree file changed: the daemon re-reads it (one started later reads it as it is then). */
  hup(): void {
    const p = this.#fuse;
    if (!p) return;
    const wait = p.startedAt + FUSE_SIGHUP_GRACE_MS - Date.now();
    if (wait <= 0) return void p.child.kill('SIGHUP');
    if (this.#hupPending) return;
    this.#hupPending = true;
    this.#timers.later(wait, () => {
      this.#hupPending = false;
      this.hup();
    });
  }

  async start(): Promise<void> {
    if (this.#closed) return;
    const { mountDir, logger } = this.#o;
    try {
      await mkdir(mountDir, { recursive: true });
      unmount(mountDir); // one left behind by a daemon that was killed
      const p = await startRemotedev({
        mount: mountDir,
        treeFile: this.#o.treeFile,
        ...(this.#o.binary ? { binary: this.#o.binary } : {}),
        ...(this.#o.tls ? { tls: this.#o.tls } : {}),
        ...(this.#o.extraArgs ? { extraArgs: this.#o.extraArgs } : {}),
      });
      if (this.#closed) return void (await p.stop());
      this.#started(p);
    } catch (err) {
      this.#failures++;
      const wait = backoffMs(this.#failures);
      logger.error(
        { err, failures: this.#failures, retryInMs: wait },
        'remotedev-fuse did not start',
      );
      this.#timers.later(wait, () => void this.start());
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#timers.clear();
    const p = this.#fuse;
    this.#fuse = null;
    if (p) {
      this.#o.logger.info({ pid: p.pid, mount: p.mount }, 'stopping remotedev-fuse');
      await p.stop();
      this.#o.metrics?.remotedevExited();
    }
    unmount(this.#o.mountDir);
  }

  #started(p: RunningRemotedev): void {
    this.#fuse = p;
    this.#o.metrics?.remotedevStarted();
    this.#o.logger.info({ pid: p.pid, mount: this.#o.mountDir }, 'remotedev-fuse mounted');
    // The tree may have changed while it started.
    const started = this.#o.tree();
    this.#timers.later(FUSE_SIGHUP_GRACE_MS, () => {
      if (this.#fuse === p && this.#o.tree() !== started) this.hup();
    });
    void p.exited.then(({ code, signal }) => this.#onExit(p, code, signal));
  }

  #onExit(p: RunningRemotedev, code: number | null, signal: string | null): void {
    if (this.#fuse !== p) return;
    this.#fuse = null;
    this.#o.metrics?.remotedevExited();
    if (this.#closed) return;
    unmount(p.mount);
    this.#failures = Date.now() - p.startedAt >= FUSE_STABLE_MS ? 1 : this.#failures + 1;
    const wait = backoffMs(this.#failures);
    this.#o.logger.warn(
      { pid: p.pid, code, signal, stderr: p.stderrTail().trim(), retryInMs: wait },
      'remotedev-fuse exited; restarting',
    );
    this.#timers.later(wait, () => void this.start());
  }
}
