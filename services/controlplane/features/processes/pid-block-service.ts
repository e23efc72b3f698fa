/**
 * PID blocks: each claim is one CAS on the block table (core/pid-blocks.ts
 * decides the next table). A replica hands out PIDs of its own blocks for the
 * processes it creates, and answers "whose block holds this PID" from a cached
 * table (blocks are only ever added: re-read on a miss).
 */
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
  ) {
    this.own = new PidAllocator(() => this.claim(ownOwner, DEFAULT_PID_BLOCK_SIZE));
  }

  claim(owner: string, size: number): Promise<PidBlock> {
    return updateAtomically(this.store, [processKeys.pidBlocks], (current) => {
      const next = claimPidBlock(pidBlockTableIn(current), owner, size, this.now());
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
