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
 *
 * This module is the allocator; the shapes are in segment-types.ts, free-space
 * accounting in segment-space.ts and the invariant checker in
 * segment-check.ts, all re-exported here.
 */
import { AmalgamError } from './errors.ts';
import { alignUp, type MemoryLayout } from './memory-layout.ts';
import { validateNodeName, validateSegmentId } from './names.ts';
import {
  freeGapsByNode,
  type Gap,
  roundRobinShares,
  sumSizes,
  takeBlocks,
} from './segment-space.ts';
import {
  EXTENT_ALIGNMENT,
  type Extent,
  PAGE_SIZE,
  type Placement,
  type Segment,
  type SegmentAllocation,
  type SegmentRelease,
  type SegmentRequest,
  type SegmentTable,
} from './segment-types.ts';

export { checkSegments } from './segment-check.ts';
export { nodeUsage } from './segment-space.ts';
export {
  createSegmentTable,
  EXTENT_ALIGNMENT,
  type Extent,
  extentFootprint,
  type NodeUsage,
  PAGE_SIZE,
  type Placement,
  type Segment,
  type SegmentAllocation,
  type SegmentRelease,
  type SegmentRequest,
  type SegmentTable,
  type SegmentViolation,
  type SegmentViolationKind,
} from './segment-types.ts';

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
  const { id, size, placement } = validateRequest(request);
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
  const extents =
    placement.mode === 'pinned'
      ? pinnedExtents(gaps, placement.node, blocks, size)
      : spreadExtents(gaps, blocks, size);
  // The last extent gives back the unused pages of its final block.
  const last = extents[extents.length - 1] as Extent;
  extents[extents.length - 1] = {
    ...last,
    size: last.size - (blocks * EXTENT_ALIGNMENT - size),
  };
  const segment: Segment = { id, size, extents, placement };
  return { table: { segments: [...table.segments, segment] }, segment, created: true };
}

/** The request with its size rounded up to whole pages; INVALID_ARGUMENT naming the field. */
function validateRequest(request: SegmentRequest): SegmentRequest {
  validateSegmentId(request.id, 'id');
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
  return { id: request.id, size: alignUp(request.size, PAGE_SIZE), placement };
}

/** `blocks` blocks all on `node`. */
function pinnedExtents(
  gaps: Map<string, Gap[]>,
  node: string,
  blocks: number,
  size: number,
): Extent[] {
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
  return takeBlocks(node, nodeGaps, blocks);
}

/** `blocks` blocks dealt round robin over the nodes, most free bytes first. */
function spreadExtents(gaps: Map<string, Gap[]>, blocks: number, size: number): Extent[] {
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
  return candidates.flatMap((c, i) =>
    (shares[i] ?? 0) > 0 ? takeBlocks(c.node, c.gaps, shares[i] as number) : [],
  );
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
