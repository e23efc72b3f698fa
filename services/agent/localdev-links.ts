/**
 * `/localdev`: a `<localdev>/<dev>` symlink to each of this machine's own
 * devices, kept in step with the inventory. Only symlinks there are ever
 * removed; updates run one after the other.
 */
import { lstat, mkdir, readdir, readlink, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DeviceInventoryItem } from '../api/contracts.ts';
import { localdevLinks } from './device-files.ts';

export class LocaldevLinks {
  readonly #dir: string;
  readonly #logger: Logger;
  #linking = Promise.resolve();

  constructor(dir: string, logger: Logger) {
    this.#dir = dir;
    this.#logger = logger;
  }

  relink(items: readonly DeviceInventoryItem[]): void {
    const wanted = localdevLinks(items);
    this.#linking = this.#linking.then(() =>
      this.#apply(wanted).catch((err: unknown) => {
        this.#logger.warn({ err, dir: this.#dir }, 'cannot update /localdev');
      }),
    );
  }

  /** Waits for the updates under way. */
  settled(): Promise<void> {
    return this.#linking;
  }

  async #apply(wanted: Map<string, string>): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    for (const entry of await readdir(this.#dir)) {
      const path = join(this.#dir, entry);
      if (!(await lstat(path)).isSymbolicLink()) continue;
      if (wanted.get(entry) !== (await readlink(path))) await unlink(path);
    }
    for (const [name, target] of wanted) {
      const path = join(this.#dir, name);
      const current = await readlink(path).catch(() => undefined);
      if (current === target) continue;
      if (current !== undefined) await unlink(path);
      await symlink(target, path).catch((err: NodeJS.ErrnoException) => {
        this.#logger.warn({ err, path }, 'cannot make a /localdev link');
      });
    }
  }
}
