/**
 * The shapes of segments (see segments.ts for the rules they follow), apart
 * from the functions so the allocator, the free-space accounting and the
 * checker can share them without importing one another.
 */
import { alignUp, RANGE_ALIGNMENT } from './memory-layout.ts';

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

export function createSegmentTable(): SegmentTable {
  return { segments: [] };
}

/** The bytes an extent reserves: its size rounded up to a whole block. */
export function extentFootprint(extent: Extent): number {
  return alignUp(extent.size, EXTENT_ALIGNMENT);
}
