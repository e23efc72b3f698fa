/**
 * The network memory space: one cluster-wide address space in which every
 * node owns ONE contiguous, 2 MiB aligned range that it serves.
 *
 * Pure: state in, state out. A `MemoryLayout` is plain JSON; functions never
 * mutate their arguments, and `ranges` is always kept sorted by `start` so the
 * stored value is canonical (the same allocations give the same bytes).
 *
 * The space ends at 2^52 so that every address and every size is a JS safe
 * integer. It starts at 2 MiB so that address 0 (and the first huge page) is
 * never a valid network address: a NULL pointer is never someone's memory.
 */
import { AmalgamError } from './errors.ts';
import { validateNodeName } from './names.ts';

export const MIB = 1024 * 1024;
/** Range starts and sizes are multiples of this (one x86-64 huge page). */
export const RANGE_ALIGNMENT = 2 * MIB;
export const DEFAULT_SPACE_START = 2 * MIB;
export const DEFAULT_SPACE_END = 2 ** 52;

export interface NodeRange {
  node: string;
  /** First global address of the range. */
  start: number;
  /** Bytes; the range is [start, start + size). */
  size: number;
}

export interface MemoryLayout {
  spaceStart: number;
  spaceEnd: number;
  /** Sorted by `start`; at most one range per node. */
  ranges: NodeRange[];
}

export interface RangeAllocation {
  layout: MemoryLayout;
  range: NodeRange;
  /** False when the node already had a range: `layout` is the input, unchanged. */
  created: boolean;
}

export interface RangeRelease {
  layout: MemoryLayout;
  /** The range that was removed, or undefined when the node held none (layout unchanged). */
  released: NodeRange | undefined;
}

export interface LayoutStats {
  spaceBytes: number;
  allocatedBytes: number;
  freeBytes: number;
  nodes: number;
  /** The largest range a new node could get right now. */
  largestFreeBytes: number;
}

export type LayoutViolationKind =
  | 'invalid-space'
  | 'invalid-range'
  | 'misaligned'
  | 'outside-space'
  | 'overlap'
  | 'duplicate-node'
  | 'unsorted';

export interface LayoutViolation {
  kind: LayoutViolationKind;
  node?: string;
  message: string;
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function isAligned(value: number, alignment: number): boolean {
  return Number.isSafeInteger(value) && value % alignment === 0;
}

function invalid(field: string, rule: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${rule}`, { field });
}

/** An empty layout. Bounds must be 2 MiB aligned safe integers with start < end. */
export function createMemoryLayout(
  options: { spaceStart?: number; spaceEnd?: number } = {},
): MemoryLayout {
  const spaceStart = options.spaceStart ?? DEFAULT_SPACE_START;
  const spaceEnd = options.spaceEnd ?? DEFAULT_SPACE_END;
  for (const [field, value] of [
    ['spaceStart', spaceStart],
    ['spaceEnd', spaceEnd],
  ] as const) {
    if (!isAligned(value, RANGE_ALIGNMENT) || value < 0) {
      throw invalid(field, 'a non-negative safe integer that is a multiple of 2 MiB is required');
    }
  }
  if (spaceStart >= spaceEnd) throw invalid('spaceEnd', 'must be greater than spaceStart');
  return { spaceStart, spaceEnd, ranges: [] };
}

function byStart(a: { start: number }, b: { start: number }): number {
  return a.start - b.start;
}

function sortedRanges(layout: MemoryLayout): NodeRange[] {
  return [...layout.ranges].sort(byStart);
}

/** Free gaps of the space in address order, each 2 MiB aligned. */
function freeGaps(layout: MemoryLayout): { start: number; size: number }[] {
  const gaps: { start: number; size: number }[] = [];
  let cursor = layout.spaceStart;
  for (const r of sortedRanges(layout)) {
    if (r.start > cursor) gaps.push({ start: cursor, size: r.start - cursor });
    // alignUp only matters for a corrupt layout; it keeps new ranges aligned regardless.
    cursor = Math.max(cursor, alignUp(r.start + r.size, RANGE_ALIGNMENT));
  }
  if (layout.spaceEnd > cursor) gaps.push({ start: cursor, size: layout.spaceEnd - cursor });
  return gaps;
}

export function rangeOf(layout: MemoryLayout, node: string): NodeRange | undefined {
  return layout.ranges.find((r) => r.node === node);
}

/**
 * Give `node` one contiguous range of at least `bytes` (rounded up to 2 MiB):
 * the first gap in address order that fits. Idempotent: a node that already
 * has a range gets that same range back and the layout unchanged, whatever
 * `bytes` says (a range is never resized in place; release and re-allocate).
 *
 * Throws INVALID_ARGUMENT (field `node` or `bytes`) or RANGE_EXHAUSTED.
 */
export function allocateRange(layout: MemoryLayout, node: string, bytes: number): RangeAllocation {
  validateNodeName(node, 'node');
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes <= 0) {
    throw invalid('bytes', 'a positive safe integer is required');
  }
  const existing = rangeOf(layout, node);
  if (existing) return { layout, range: existing, created: false };

  const size = alignUp(bytes, RANGE_ALIGNMENT);
  const gap = freeGaps(layout).find((g) => g.size >= size);
  if (!gap) {
    throw new AmalgamError('RANGE_EXHAUSTED', `no free gap of ${size} bytes for node ${node}`, {
      node,
      requestedBytes: size,
    });
  }
  const range: NodeRange = { node, start: gap.start, size };
  return {
    layout: { ...layout, ranges: [...layout.ranges, range].sort(byStart) },
    range,
    created: true,
  };
}

/**
 * Remove `node`'s range, leaving a gap that later allocations reuse first fit.
 * Idempotent: an unknown node leaves the layout unchanged. The caller must
 * first make sure no segment still has an extent on the node.
 */
export function releaseRange(layout: MemoryLayout, node: string): RangeRelease {
  const released = rangeOf(layout, node);
  if (!released) return { layout, released: undefined };
  return { layout: { ...layout, ranges: layout.ranges.filter((r) => r !== released) }, released };
}

/** The range containing `address`, or undefined. Relies on `ranges` being sorted. */
export function ownerOf(layout: MemoryLayout, address: number): NodeRange | undefined {
  if (!Number.isSafeInteger(address)) return undefined;
  const ranges = layout.ranges;
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = ranges[mid] as NodeRange;
    if (address < r.start) hi = mid - 1;
    else if (address >= r.start + r.size) lo = mid + 1;
    else return r;
  }
  return undefined;
}

export function layoutStats(layout: MemoryLayout): LayoutStats {
  const spaceBytes = layout.spaceEnd - layout.spaceStart;
  const allocatedBytes = layout.ranges.reduce((sum, r) => sum + r.size, 0);
  const largestFreeBytes = freeGaps(layout).reduce((max, g) => Math.max(max, g.size), 0);
  return {
    spaceBytes,
    allocatedBytes,
    freeBytes: spaceBytes - allocatedBytes,
    nodes: layout.ranges.length,
    largestFreeBytes,
  };
}

/**
 * Every way `layout` breaks the rules; empty when it is sound. Used by tests
 * and by the chaos checker on layouts read back from the store.
 */
export function checkLayout(layout: MemoryLayout): LayoutViolation[] {
  const out: LayoutViolation[] = [];
  const { spaceStart, spaceEnd } = layout;
  if (
    !isAligned(spaceStart, RANGE_ALIGNMENT) ||
    !isAligned(spaceEnd, RANGE_ALIGNMENT) ||
    spaceStart < 0 ||
    spaceStart >= spaceEnd
  ) {
    out.push({
      kind: 'invalid-space',
      message: `space [${spaceStart}, ${spaceEnd}) is not 2 MiB aligned and non-empty`,
    });
  }
  const seen = new Set<string>();
  for (const r of layout.ranges) {
    const node = r.node;
    if (seen.has(node)) {
      out.push({ kind: 'duplicate-node', node, message: `node ${node} has more than one range` });
    }
    seen.add(node);
    if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.size) || r.size <= 0) {
      out.push({ kind: 'invalid-range', node, message: `range of ${node} is not a positive size` });
      continue;
    }
    if (!isAligned(r.start, RANGE_ALIGNMENT) || !isAligned(r.size, RANGE_ALIGNMENT)) {
      out.push({
        kind: 'misaligned',
        node,
        message: `range of ${node} [${r.start}, +${r.size}) is not 2 MiB aligned`,
      });
    }
    if (r.start < spaceStart || r.start + r.size > spaceEnd) {
      out.push({
        kind: 'outside-space',
        node,
        message: `range of ${node} [${r.start}, +${r.size}) leaves the space`,
      });
    }
  }
  for (let i = 1; i < layout.ranges.length; i++) {
    const prev = layout.ranges[i - 1] as NodeRange;
    const cur = layout.ranges[i] as NodeRange;
    if (cur.start < prev.start) {
      out.push({ kind: 'unsorted', node: cur.node, message: 'ranges are not sorted by start' });
      break;
    }
  }
  const sorted = sortedRanges(layout);
  let reach = -Infinity;
  let reachNode = '';
  for (const r of sorted) {
    if (r.start < reach) {
      out.push({
        kind: 'overlap',
        node: r.node,
        message: `range of ${r.node} overlaps the range of ${reachNode}`,
      });
    }
    if (r.start + r.size > reach) {
      reach = r.start + r.size;
      reachNode = r.node;
    }
  }
  return out;
}
