/**
 * Free space of the segment table: which whole blocks of each node's range
 * no extent reserves, and how to take blocks from them.
 */
import { alignUp, type MemoryLayout } from './memory-layout.ts';
import {
  EXTENT_ALIGNMENT,
  type Extent,
  extentFootprint,
  type NodeUsage,
  type SegmentTable,
} from './segment-types.ts';

/** A free (or, in footprints, a reserved) span of global addresses. */
export interface Gap {
  start: number;
  size: number;
}

function footprints(table: SegmentTable): Gap[] {
  const out: Gap[] = [];
  for (const s of table.segments) {
    for (const e of s.extents) out.push({ start: e.start, size: extentFootprint(e) });
  }
  return out.sort((a, b) => a.start - b.start);
}

/**
 * Free block-aligned gaps per node, in address order. Occupancy is taken from
 * the extents' addresses, not their `node` labels, so a mislabelled extent can
 * never be handed out twice.
 */
export function freeGapsByNode(layout: MemoryLayout, table: SegmentTable): Map<string, Gap[]> {
  const used = footprints(table);
  const result = new Map<string, Gap[]>();
  let i = 0;
  for (const r of [...layout.ranges].sort((a, b) => a.start - b.start)) {
    const end = r.start + r.size;
    const gaps: Gap[] = [];
    while (i < used.length && (used[i] as Gap).start + (used[i] as Gap).size <= r.start) i++;
    let cursor = r.start;
    // Only whole blocks are free: trimming to block boundaries matters only
    // for a corrupt layout or table, and keeps new extents aligned regardless.
    const push = (from: number, to: number) => {
      const start = alignUp(from, EXTENT_ALIGNMENT);
      const stop = Math.floor(to / EXTENT_ALIGNMENT) * EXTENT_ALIGNMENT;
      if (stop > start) gaps.push({ start, size: stop - start });
    };
    for (let j = i; j < used.length && (used[j] as Gap).start < end; j++) {
      const u = used[j] as Gap;
      if (u.start > cursor) push(cursor, u.start);
      cursor = Math.max(cursor, u.start + u.size);
    }
    push(cursor, end);
    result.set(r.node, gaps);
  }
  return result;
}

export function sumSizes(items: { size: number }[]): number {
  return items.reduce((sum, g) => sum + g.size, 0);
}

/** Used and free bytes of every node that holds a range, in address order. */
export function nodeUsage(layout: MemoryLayout, table: SegmentTable): NodeUsage[] {
  const gaps = freeGapsByNode(layout, table);
  return [...layout.ranges]
    .sort((a, b) => a.start - b.start)
    .map((r) => {
      const freeBytes = sumSizes(gaps.get(r.node) ?? []);
      return { node: r.node, rangeBytes: r.size, usedBytes: r.size - freeBytes, freeBytes };
    });
}

/**
 * Take `blocks` blocks from one node's gaps: the first gap that holds them all,
 * else the largest gaps first (fewest extents). Returned in address order.
 */
export function takeBlocks(node: string, gaps: Gap[], blocks: number): Extent[] {
  const bytes = blocks * EXTENT_ALIGNMENT;
  const whole = gaps.find((g) => g.size >= bytes);
  if (whole) return [{ node, start: whole.start, size: bytes }];
  const extents: Extent[] = [];
  let left = bytes;
  for (const g of [...gaps].sort((a, b) => b.size - a.size || a.start - b.start)) {
    if (left === 0) break;
    const size = Math.min(g.size, left);
    extents.push({ node, start: g.start, size });
    left -= size;
  }
  return extents.sort((a, b) => a.start - b.start);
}

/**
 * How many blocks each node gets when `blocks` are dealt one at a time, round
 * robin, in the given order, skipping nodes that are full. Computed in closed
 * form (a 1 TiB segment is half a million blocks).
 */
export function roundRobinShares(capacities: number[], blocks: number): number[] {
  const level = (t: number) => capacities.reduce((sum, c) => sum + Math.min(c, t), 0);
  // Largest number of full rounds t with level(t) <= blocks.
  let lo = 0;
  let hi = Math.max(0, ...capacities);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (level(mid) <= blocks) lo = mid;
    else hi = mid - 1;
  }
  let extra = blocks - level(lo);
  return capacities.map((c) => {
    let share = Math.min(c, lo);
    if (extra > 0 && c > lo) {
      share++;
      extra--;
    }
    return share;
  });
}
