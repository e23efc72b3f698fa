/**
 * PID blocks: each claim is one CAS on the block table (core/pid-blocks.ts
 * decides the next table). A caller's owner may hold at most
 * `quotas.pidBlocksPerOwner` blocks (blocks are never given back, so without
 * it one member could use up the PID space for good): counted in the same
 * table the claim rewrites, so concurrent claims never get past it (the CAS
 * makes the later one decide again on the table with the earlier block).
 * This replica's own blocks (for the processes it creates) are not counted. A replica hands out PIDs of its own blocks for the
 * processes it creates, and answers "whose block holds this PID" from a cached
 * table (blocks are only ever added: re-read on a miss).
 */

import { AmalgamError } from '../../../core/errors.ts';
import {
  blockOf,
  claimPidBlock,
  createPidBlockTable,
  DEFAULT_PID_BLOCK_SIZE,
  PidAllocator,
  type PidBlock,
  type PidBlockTable,
} from '../../../core/pid-blocks.ts';
import type { Store } from '../../../store/store.ts';
import { DEFAULT_QUOTAS } from '../../limits.ts';
import { putJson, updateAtomically } from '../../service/optimistic.ts';
import { pidBlockTableIn, processKeys, readPidBlockTable } from './records.ts';

export class PidBlockService {
  private table: PidBlockTable = createPidBlockTable();
  private readonly own: PidAllocator;

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    /** This replica as the owner of its own blocks (`clusterd:<replica id>`). */
    ownOwner: string,
    /** Blocks one owner may claim through `claim` (quotas.pidBlocksPerOwner). */
    private readonly perOwner: number = DEFAULT_QUOTAS.pidBlocksPerOwner,
  ) {
    this.own = new PidAllocator(() => this.#claim(ownOwner, DEFAULT_PID_BLOCK_SIZE, Infinity));
  }

  /** A block for `owner`, within its quota (QUOTA_EXCEEDED naming the count otherwise). */
  claim(owner: string, size: number): Promise<PidBlock> {
    return this.#claim(owner, size, this.perOwner);
  }

  #claim(owner: string, size: number, limit: number): Promise<PidBlock> {
    return updateAtomically(this.store, [processKeys.pidBlocks], (current) => {
      const table = pidBlockTableIn(current);
      const held = table.blocks.filter((b) => b.owner === owner).length;
      if (held >= limit) {
        throw new AmalgamError('QUOTA_EXCEEDED', `${owner} holds ${held} PID blocks`, {
          quota: 'pidBlocksPerOwner',
          limit,
          current: held,
          owner,
        });
      }
      const next = claimPidBlock(table, owner, size, this.now());
      return { writes: [putJson(processKeys.pidBlocks, next.table)], result: next.block };
    });
  }

  /** Every claimed block, in claim order, read from the store (not the cache). */
  async list(): Promise<PidBlock[]> {
    return (await readPidBlockTable(this.store)).blocks;
  }

  /** Who holds the block of `cpid`, if any block does. */
  async ownerOf(cpid: number): Promise<string | undefined> {
    let block = blockOf(this.table, cpid);
    if (!block) {
      this.table = await readPidBlockTable(this.store);
      block = blockOf(this.table, cpid);
    }
    return block?.owner;
  }

  /** A PID of this replica's own blocks (claims one when they are used up). */
  nextOwnPid(): Promise<number> {
    return this.own.next();
  }
}
