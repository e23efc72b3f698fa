/**
 * Segments: pieces of cluster memory carved out of the nodes' ranges.
 *
 * A segment is a list of extents (global addresses); segment offset 0 is the
 * start of the first extent and the extents follow one another in list order.
 *
 * Allocation works in 2 MiB blocks: every extent starts on a 2 MiB boundary and
 * every extent but the last is a whole number of blocks; the last one is a
 * whole number of 4 KiB pages and reserves the rest of its final block. So two
 * segments never share a huge page (a mapper that maps with 2 MiB pages never
 * exposes another segment), at the cost of up to 2 MiB - 4 KiB of slack per
 * segment. An extent's *footprint* is its size rounded up to 2 MiB; per node,
 * footprints + free bytes == range size.
 *
 * Extents of one node are coalesced into as few runs as the free gaps allow,
 * so the stored table stays small (it lives in one store value).
 */
import { AmalgamError } from './errors.ts';
import {
  alignUp,
  isAligned,
  type MemoryLayout,
  type NodeRange,
  RANGE_ALIGNMENT,
  rangeOf,
} from './memory-layout.ts';
import { isValidNodeName, validateNodeName, validateSegmentId } from './names.ts';

export const PAGE_SIZE = 4096;
/** Extents start on this boundary and are allocated in blocks of this size. */
export const EXTENT_ALIGNMENT = RANGE_ALIGNMENT;

export type Placement = { mode: 'spread' } | { mode: 'pinned'; node: string };

export interface Extent {
  node: string;
  /** Global address, 2 MiB aligned, inside `node`'s range. */
  start: number;
  /** Bytes, a multiple of 4 KiB; a multiple of 2 MiB unless it is the segment's last extent. */
  size: number;
}

export interface Segment {
  id: string;
  /** Bytes, the requested size rounded up to 4 KiB; equals the sum of the extent sizes. */
  size: number;
  extents: Extent[];
  placement: Placement;
}

export interface SegmentTable {
  segments: Segment[];
}

export interface SegmentRequest {
  id: string;
  size: number;
  placement: Placement;
}

export interface SegmentAllocation {
  table: SegmentTable;
  segment: Segment;
  /** False when an identical segment with this id already existed: `table` is the input. */
  created: boolean;
}

export interface SegmentRelease {
  table: SegmentTable;
  segment: Segment;
}

export interface NodeUsage {
  node: string;
  rangeBytes: number;
  /** Bytes reserved by extent footprints. */
  usedBytes: number;
  freeBytes: number;
}

export type SegmentViolationKind =
  | 'invalid-segment'
  | 'duplicate-id'
  | 'size-mismatch'
  | 'misaligned'
  | 'outside-node'
  | 'overlap'
  | 'placement';

export interface SegmentViolation {
  kind: SegmentViolationKind;
  segment: string;
  node?: string;
  message: string;
}

interface Gap {
  start: number;
  size: number;
}

export function createSegmentTable(): SegmentTable {
  return { segments: [] };
}

/** The bytes an extent reserves: its size rounded up to a whole block. */
export function extentFootprint(extent: Extent): number {
  return alignUp(extent.size, EXTENT_ALIGNMENT);
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
function freeGapsByNode(layout: MemoryLayout, table: SegmentTable): Map<string, Gap[]> {
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

function sumSizes(items: { size: number }[]): number {
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
function takeBlocks(node: string, gaps: Gap[], blocks: number): Extent[] {
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
function roundRobinShares(capacities: number[], blocks: number): number[] {
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

function validatePlacement(placement: unknown): Placement {
  if (typeof placement !== 'object' || placement === null) {
    throw new AmalgamError('INVALID_ARGUMENT', 'placement: an object is required', {
      field: 'placement',
    });
  }
  const { mode, node } = placement as { mode?: unknown; node?: unknown };
  if (mode === 'spread') return { mode };
  if (mode === 'pinned') {
    validateNodeName(node, 'placement.node');
    return { mode, node };
  }
  throw new AmalgamError('INVALID_ARGUMENT', "placement.mode: 'spread' or 'pinned' is required", {
    field: 'placement.mode',
  });
}

function samePlacement(a: Placement, b: Placement): boolean {
  return a.mode === b.mode && (a.mode === 'spread' || a.node === (b as typeof a).node);
}

function exhausted(detail: string, details: Record<string, unknown>): AmalgamError {
  return new AmalgamError('RANGE_EXHAUSTED', detail, details);
}

/**
 * Allocate a segment of `size` bytes (rounded up to 4 KiB).
 *
 * - `spread`: blocks are dealt round robin over the nodes with free space,
 *   most free bytes first (ties by node name); each node's share is taken from
 *   its gaps as one extent when a gap holds it. Extents are ordered by node in
 *   that order, then by address.
 * - `pinned`: every block on `placement.node` (NODE_NOT_FOUND if it holds no range).
 *
 * Idempotent by id: when a segment with `id` exists with the same rounded size
 * and placement it is returned unchanged (`created: false`); with a different
 * size or placement the id is NAME_TAKEN. Not enough free memory (in total, or
 * on the pinned node) is RANGE_EXHAUSTED. Bad input is INVALID_ARGUMENT naming
 * the field (`id`, `size`, `placement`, `placement.mode`, `placement.node`).
 */
export function allocateSegment(
  layout: MemoryLayout,
  table: SegmentTable,
  request: SegmentRequest,
): SegmentAllocation {
  validateSegmentId(request.id, 'id');
  const { id } = request;
  if (
    typeof request.size !== 'number' ||
    !Number.isSafeInteger(request.size) ||
    request.size <= 0
  ) {
    throw new AmalgamError('INVALID_ARGUMENT', 'size: a positive safe integer is required', {
      field: 'size',
    });
  }
  const placement = validatePlacement(request.placement);
  const size = alignUp(request.size, PAGE_SIZE);

  const existing = table.segments.find((s) => s.id === id);
  if (existing) {
    if (existing.size === size && samePlacement(existing.placement, placement)) {
      return { table, segment: existing, created: false };
    }
    throw new AmalgamError('NAME_TAKEN', `segment ${id} exists with another size or placement`, {
      field: 'id',
      id,
    });
  }

  const blocks = Math.ceil(size / EXTENT_ALIGNMENT);
  const gaps = freeGapsByNode(layout, table);
  let extents: Extent[];

  if (placement.mode === 'pinned') {
    const node = placement.node;
    const nodeGaps = gaps.get(node);
    if (!nodeGaps) {
      throw new AmalgamError('NODE_NOT_FOUND', `node ${node} holds no memory range`, {
        field: 'placement.node',
        node,
      });
    }
    const freeBytes = sumSizes(nodeGaps);
    if (freeBytes < blocks * EXTENT_ALIGNMENT) {
      throw exhausted(`node ${node} has ${freeBytes} free bytes`, {
        node,
        requestedBytes: size,
        freeBytes,
      });
    }
    extents = takeBlocks(node, nodeGaps, blocks);
  } else {
    const candidates = [...gaps]
      .map(([node, g]) => ({ node, gaps: g, free: sumSizes(g) }))
      .filter((c) => c.free > 0)
      .sort((a, b) => b.free - a.free || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    const freeBytes = sumSizes(candidates.map((c) => ({ size: c.free })));
    if (freeBytes < blocks * EXTENT_ALIGNMENT) {
      throw exhausted(`the cluster has ${freeBytes} free bytes`, {
        requestedBytes: size,
        freeBytes,
      });
    }
    const shares = roundRobinShares(
      candidates.map((c) => c.free / EXTENT_ALIGNMENT),
      blocks,
    );
    extents = candidates.flatMap((c, i) =>
      (shares[i] ?? 0) > 0 ? takeBlocks(c.node, c.gaps, shares[i] as number) : [],
    );
  }

  // The last extent gives back the unused pages of its final block.
  const last = extents[extents.length - 1] as Extent;
  extents[extents.length - 1] = {
    ...last,
    size: last.size - (blocks * EXTENT_ALIGNMENT - size),
  };
  const segment: Segment = { id, size, extents, placement };
  return { table: { segments: [...table.segments, segment] }, segment, created: true };
}

/** Remove segment `id`; its blocks become free. Unknown id is SEGMENT_NOT_FOUND. */
export function freeSegment(table: SegmentTable, id: string): SegmentRelease {
  const segment = table.segments.find((s) => s.id === id);
  if (!segment) {
    throw new AmalgamError('SEGMENT_NOT_FOUND', `segment ${String(id)}`, { id });
  }
  return { table: { segments: table.segments.filter((s) => s !== segment) }, segment };
}

/** Segments with at least one extent on `node`, in table order. */
export function segmentsOnNode(table: SegmentTable, node: string): Segment[] {
  return table.segments.filter((s) => s.extents.some((e) => e.node === node));
}

/**
 * Every way `table` breaks the rules against `layout`; empty when sound.
 * Checks sizes and alignment, that every extent's footprint lies inside its
 * node's range, that no two footprints overlap, and pinned placement.
 */
export function checkSegments(layout: MemoryLayout, table: SegmentTable): SegmentViolation[] {
  const out: SegmentViolation[] = [];
  const ids = new Set<string>();
  const spans: { start: number; end: number; segment: string }[] = [];
  for (const s of table.segments) {
    const segment = s.id;
    if (ids.has(segment)) {
      out.push({ kind: 'duplicate-id', segment, message: `segment id ${segment} is used twice` });
    }
    ids.add(segment);
    if (!isAligned(s.size, PAGE_SIZE) || s.size <= 0 || s.extents.length === 0) {
      out.push({
        kind: 'invalid-segment',
        segment,
        message: `segment ${segment} needs a positive size in whole pages and at least one extent`,
      });
      continue;
    }
    if (s.placement.mode === 'pinned' && !isValidNodeName(s.placement.node)) {
      out.push({ kind: 'invalid-segment', segment, message: 'pinned placement names no node' });
    }
    let total = 0;
    s.extents.forEach((e, i) => {
      const node = e.node;
      total += e.size;
      const isLast = i === s.extents.length - 1;
      if (
        !isAligned(e.start, EXTENT_ALIGNMENT) ||
        !isAligned(e.size, isLast ? PAGE_SIZE : EXTENT_ALIGNMENT) ||
        e.size <= 0
      ) {
        out.push({
          kind: 'misaligned',
          segment,
          node,
          message: `extent ${i} [${e.start}, +${e.size}) of ${segment} is misaligned`,
        });
        return;
      }
      const range: NodeRange | undefined = rangeOf(layout, node);
      const end = e.start + extentFootprint(e);
      if (!range || e.start < range.start || end > range.start + range.size) {
        out.push({
          kind: 'outside-node',
          segment,
          node,
          message: `extent ${i} of ${segment} is not inside the range of node ${node}`,
        });
      }
      if (s.placement.mode === 'pinned' && node !== s.placement.node) {
        out.push({
          kind: 'placement',
          segment,
          node,
          message: `segment ${segment} is pinned to ${s.placement.node} but has an extent on ${node}`,
        });
      }
      spans.push({ start: e.start, end, segment });
    });
    if (total !== s.size) {
      out.push({
        kind: 'size-mismatch',
        segment,
        message: `extents of ${segment} hold ${total} bytes, its size is ${s.size}`,
      });
    }
  }
  spans.sort((a, b) => a.start - b.start);
  let reach = -Infinity;
  let reachSegment = '';
  for (const span of spans) {
    if (span.start < reach) {
      out.push({
        kind: 'overlap',
        segment: span.segment,
        message: `an extent of ${span.segment} overlaps an extent of ${reachSegment}`,
      });
    }
    if (span.end > reach) {
      reach = span.end;
      reachSegment = span.segment;
    }
  }
  return out;
}
