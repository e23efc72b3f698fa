/**
 * The directories of this node's copies, `<dataDir>/proc/<cpid>/`:
 * `checkpoint/` (where the running copy writes; `checkpoint.complete` beside it once it exited 0
 * after our signal), `received-<epoch>/` (what a source shipped to us),
 * `restore/` (what the copy resumed from), `work/` (its working directory),
 * `output.log`, and `copy.json` (the shim and process of the running copy,
 * each with its start time and the boot id, for the next agent to wait on).
 *
 * `<cpid>/` itself, `output.log` and `copy.json` stay the agent's (root's):
 * only `checkpoint/`, `restore/` and `work/` belong to the user the copy runs
 * as, so the process cannot swap the files the agent opens for links.
 */
import { existsSync } from 'node:fs';
import { lchown, lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ProcessView } from '../../api/contracts.ts';
import { monotonicMs } from './monotonic.ts';
import { identityOf, killIfOurs, type ProcessIdentity, stillRuns } from './process-identity.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What copy.json holds: the shim and the process, each with its identity. */
export interface CopyRecord {
  epoch: number;
  id: string;
  shim?: Partial<ProcessIdentity>;
  process?: Partial<ProcessIdentity>;
}

/** Whom a copy's own directories belong to. */
export interface DirOwner {
  uid: number;
  gid: number;
}

/**
 * chown -R without following links, of a tree the agent wrote (a received
 * checkpoint, a fresh directory). A tree the owner already has is left alone:
 * it may hold what the user made, and walking it as root would race its links.
 */
async function chownTree(path: string, owner: DirOwner, top = true): Promise<void> {
  const s = await lstat(path).catch(() => null);
  if (!s || (top && s.uid === owner.uid && s.gid === owner.gid)) return;
  await lchown(path, owner.uid, owner.gid);
  if (!s.isDirectory()) return;
  for (const name of await readdir(path)) await chownTree(join(path, name), owner, false);
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
  async prepare(
    view: ProcessView,
    owner: DirOwner,
  ): Promise<{ checkpoint: string; restore: string | null; work: string }> {
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
    await rm(join(dir, 'checkpoint.complete'), { force: true });
    await rm(checkpoint, { recursive: true, force: true });
    await mkdir(checkpoint, { recursive: true });
    const work = join(dir, 'work');
    await mkdir(work, { recursive: true });
    for (const d of [checkpoint, restore, work]) await chownTree(d, owner);
    return { checkpoint, restore: existsSync(restore) ? restore : null, work };
  }

  /** A checkpoint counts only when the process exited 0 after our signal. */
  async markCheckpointComplete(cpid: number, epoch: number): Promise<void> {
    // Beside the checkpoint, in the agent's directory: never written into the user's.
    await writeFile(join(this.dir(cpid), 'checkpoint.complete'), String(epoch)).catch(() => {});
  }

  /** What to ship to a migration's target: a complete checkpoint, else the state we resumed from. */
  shippable(cpid: number): string | null {
    const checkpoint = join(this.dir(cpid), 'checkpoint');
    if (existsSync(join(this.dir(cpid), 'checkpoint.complete'))) return checkpoint;
    const restore = join(this.dir(cpid), 'restore');
    return existsSync(restore) ? restore : null;
  }

  /** copy.json: the shim and the process of a copy, with their start times and the boot id. */
  async recordCopy(
    copy: { cpid: number; epoch: number; id: string; shimPid: number | undefined },
    pid: number,
  ): Promise<void> {
    const [shim, proc] = await Promise.all([identityOf(copy.shimPid ?? 0), identityOf(pid)]);
    const info: CopyRecord = {
      epoch: copy.epoch,
      id: copy.id,
      ...(shim ? { shim } : {}),
      ...(proc ? { process: proc } : {}),
    };
    await writeFile(join(this.dir(copy.cpid), 'copy.json'), JSON.stringify(info)).catch(() => {});
  }

  forgetCopy(cpid: number): void {
    void rm(join(this.dir(cpid), 'copy.json'), { force: true });
  }

  /**
   * Copies left by an earlier run of this agent: their shims kill them on EOF;
   * wait, then kill what is left, but only a process whose start time and
   * boot id match the record (a PID from a file may be someone else's now).
   */
  async waitForOrphans(logger: Logger, waitMs = 10_000): Promise<void> {
    await mkdir(this.#root, { recursive: true });
    for (const name of await readdir(this.#root).catch(() => [] as string[])) {
      const file = join(this.#root, name, 'copy.json');
      let info: CopyRecord;
      try {
        info = JSON.parse(await readFile(file, 'utf8')) as CopyRecord;
      } catch {
        continue;
      }
      const recorded = [info.process, info.shim].filter(
        (r) => r?.pid !== undefined,
      ) as Partial<ProcessIdentity>[];
      const until = monotonicMs() + waitMs;
      const anyRuns = async () => (await Promise.all(recorded.map(stillRuns))).some(Boolean);
      while ((await anyRuns()) && monotonicMs() < until) await sleep(50);
      for (const r of recorded) {
        const decision = await killIfOurs(r);
        if (decision.kill) logger.warn({ pid: r.pid }, 'killed a copy left by an earlier agent');
        else if (decision.why !== 'not running') {
          logger.warn(
            { pid: r.pid, cpid: Number(name), why: decision.why },
            'not killing a recorded pid: it is not our copy',
          );
        }
      }
      await rm(file, { force: true });
    }
  }
}
