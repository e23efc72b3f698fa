/**
 * Cluster PIDs: one number space for every process of the cluster, handed to
 * nodes (and clusterd replicas) in blocks, each claimed by one CAS on the
 * table, as memory ranges are. A holder assigns PIDs from its blocks locally,
 * without a round trip. Blocks are never given back and the table only grows
 * upwards, so a cluster PID is never reused (in particular never while its
 * process record exists). Pure: no I/O.
 */
import { AmalgamError } from './errors.ts';

export interface PidBlock {
  /** First cluster PID of the block. */
  start: number;
  size: number;
  /** Who claimed it: `node:<name>` or `clusterd:<replica id>`. */
  owner: string;
  claimedAt: number;
}

export interface PidBlockTable {
  /** The first PID no block holds yet. */
  next: number;
  blocks: PidBlock[];
}

/** Cluster PIDs below this are never handed out (reads as "not a local PID" at a glance). */
export const FIRST_CLUSTER_PID = 100_000;
/** The largest cluster PID: a safe 32-bit signed integer, as tools expect of PIDs. */
export const MAX_CLUSTER_PID = 2 ** 31 - 1;
export const DEFAULT_PID_BLOCK_SIZE = 1024;
export const MAX_PID_BLOCK_SIZE = 65_536;

export function createPidBlockTable(): PidBlockTable {
  return { next: FIRST_CLUSTER_PID, blocks: [] };
}

/** The next table with one more block for `owner` (the caller commits it by CAS). */
export function claimPidBlock(
  table: PidBlockTable,
  owner: string,
  size: number,
  now: number,
): { table: PidBlockTable; block: PidBlock } {
  if (!Number.isSafeInteger(size) || size < 1 || size > MAX_PID_BLOCK_SIZE) {
    throw new AmalgamError('INVALID_ARGUMENT', `size: an integer from 1 to ${MAX_PID_BLOCK_SIZE}`, {
      field: 'size',
    });
  }
  if (table.next + size - 1 > MAX_CLUSTER_PID) {
    throw new AmalgamError('PID_SPACE_EXHAUSTED', `no block of ${size} PIDs is left`);
  }
  const block: PidBlock = { start: table.next, size, owner, claimedAt: now };
  return { table: { next: table.next + size, blocks: [...table.blocks, block] }, block };
}

/** The block holding `cpid`, if any. */
export function blockOf(table: PidBlockTable, cpid: number): PidBlock | undefined {
  // Blocks are claimed in increasing order: binary search.
  let lo = 0;
  let hi = table.blocks.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const b = table.blocks[mid] as PidBlock;
    if (cpid < b.start) hi = mid - 1;
    else if (cpid >= b.start + b.size) lo = mid + 1;
    else return b;
  }
  return undefined;
}

/**
 * Hands out PIDs from the blocks one holder owns, in order. `refill` is asked
 * for a new block when the current ones are used up; concurrent callers share
 * one refill.
 */
export class PidAllocator {
  private blocks: PidBlock[] = [];
  private used = 0;
  private refilling: Promise<void> | undefined;
  constructor(private readonly refill: () => Promise<PidBlock>) {}

  /** A PID no other holder can get (its block is this holder's, committed). */
  async next(): Promise<number> {
    for (;;) {
      const block = this.blocks[0];
      if (block && this.used < block.size) return block.start + this.used++;
      if (block) {
        this.blocks.shift();
        this.used = 0;
        continue;
      }
      this.refilling ??= this.refill().then(
        (b) => {
          this.blocks.push(b);
          this.refilling = undefined;
        },
        (err: unknown) => {
          this.refilling = undefined;
          throw err;
        },
      );
      await this.refilling;
    }
  }
}
