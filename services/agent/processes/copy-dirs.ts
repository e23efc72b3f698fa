/**
 * The directories of this node's copies, `<dataDir>/proc/<cpid>/`:
 * `checkpoint/` (where the running copy writes; `.complete` once it exited 0
 * after our signal), `received-<epoch>/` (what a source shipped to us),
 * `restore/` (what the copy resumed from), `output.log`, and `copy.json`
 * (the shim and process of the running copy, for the next agent to wait on).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ProcessView } from '../../api/contracts.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class CopyDirs {
  readonly #root: string;

  constructor(dataDir: string) {
    this.#root = join(dataDir, 'proc');
  }

  dir(cpid: number): string {
    return join(this.#root, String(cpid));
  }

  logFile(cpid: number): string {
    return join(this.dir(cpid), 'output.log');
  }

  /** Where a checkpoint shipped for `epoch` is received (the directory is made). */
  async receiving(cpid: number, epoch: number): Promise<string> {
    await mkdir(this.dir(cpid), { recursive: true });
    return join(this.dir(cpid), `received-${epoch}`);
  }

  /**
   * Readies the directories for a copy of `view`: the state to resume from is
   * what the source shipped for this epoch, else what we had (nothing after a
   * restart-style migration); the checkpoint directory starts empty.
   */
  async prepare(view: ProcessView): Promise<{ checkpoint: string; restore: string | null }> {
    const dir = this.dir(view.cpid);
    await mkdir(dir, { recursive: true });
    const received = join(dir, `received-${view.epoch}`);
    const restore = join(dir, 'restore');
    if (view.state === 'migrating' && existsSync(received)) {
      await rm(restore, { recursive: true, force: true });
      await rename(received, restore);
    } else if (view.state === 'migrating' && view.migration?.sourceStopped !== 'checkpointed') {
      await rm(restore, { recursive: true, force: true });
    }
    const checkpoint = join(dir, 'checkpoint');
    await rm(checkpoint, { recursive: true, force: true });
    await mkdir(checkpoint, { recursive: true });
    return { checkpoint, restore: existsSync(restore) ? restore : null };
  }

  /** A checkpoint counts only when the process exited 0 after our signal. */
  async markCheckpointComplete(cpid: number, epoch: number): Promise<void> {
    await writeFile(join(this.dir(cpid), 'checkpoint', '.complete'), String(epoch)).catch(() => {});
  }

  /** What to ship to a migration's target: a complete checkpoint, else the state we resumed from. */
  shippable(cpid: number): string | null {
    const checkpoint = join(this.dir(cpid), 'checkpoint');
    if (existsSync(join(checkpoint, '.complete'))) return checkpoint;
    const restore = join(this.dir(cpid), 'restore');
    return existsSync(restore) ? restore : null;
  }

  recordCopy(cpid: number, info: { shim?: number; pid: number; epoch: number; id: string }): void {
    void writeFile(join(this.dir(cpid), 'copy.json'), JSON.stringify(info)).catch(() => {});
  }

  forgetCopy(cpid: number): void {
    void rm(join(this.dir(cpid), 'copy.json'), { force: true });
  }

  /** Copies left by an earlier run of this agent: their shims kill them on EOF; wait, then kill. */
  async waitForOrphans(logger: Logger): Promise<void> {
    await mkdir(this.#root, { recursive: true });
    for (const name of await readdir(this.#root).catch(() => [] as string[])) {
      const file = join(this.#root, name, 'copy.json');
      let info: { shim: number; pid: number };
      try {
        info = JSON.parse(await readFile(file, 'utf8')) as { shim: number; pid: number };
      } catch {
        continue;
      }
      const until = Date.now() + 10_000;
      while ((alive(info.shim) || alive(info.pid)) && Date.now() < until) await sleep(50);
      for (const pid of [info.pid, info.shim]) {
        if (!alive(pid)) continue;
        logger.warn({ pid }, 'killing a copy left by an earlier agent');
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await rm(file, { force: true });
    }
  }
}
