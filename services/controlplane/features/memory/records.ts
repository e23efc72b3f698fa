/**
 * The network memory space in the store: the layout of node ranges and the
 * segment table, each ONE value (so every claim is one CAS), their codec (the
 * only place they are parsed), the views GET and watch answer with, and the
 * watch view of `memory/`.
 */
import type { MemoryLayoutView, SegmentView } from '../../../api/contracts.ts';
import { createMemoryLayout, layoutStats, type MemoryLayout } from '../../../core/memory-layout.ts';
import { createSegmentTable, type Segment, type SegmentTable } from '../../../core/segments.ts';
import { STORE_ROOT } from '../../service/keys.ts';
import type { WatchView } from '../../service/watch-view.ts';

export const memoryKeys = {
  /** The whole network memory layout: one value, so every range claim is one CAS. */
  layout: `${STORE_ROOT}/memory/layout`,
  /** Every segment, with its owner: one value, CAS together with the layout. */
  segments: `${STORE_ROOT}/memory/segments`,
} as const;

/** The stored segment table plus who made each segment and when. */
export interface SegmentsRecord {
  table: SegmentTable;
  meta: Record<string, SegmentMeta>;
}

export interface SegmentMeta {
  owner: string;
  createdAt: number;
}

export const EMPTY_SEGMENTS: SegmentsRecord = { table: createSegmentTable(), meta: {} };

export function parseLayout(raw: string): MemoryLayout {
  return JSON.parse(raw) as MemoryLayout;
}

export function parseSegments(raw: string): SegmentsRecord {
  return JSON.parse(raw) as SegmentsRecord;
}

export function toSegmentView(segment: Segment, meta: SegmentMeta | undefined): SegmentView {
  return {
    id: segment.id,
    size: segment.size,
    placement: segment.placement,
    extents: segment.extents,
    owner: meta?.owner ?? 'unknown',
    createdAt: new Date(meta?.createdAt ?? 0).toISOString(),
  };
}

export function toSegmentViews(record: SegmentsRecord): SegmentView[] {
  return record.table.segments.map((s) => toSegmentView(s, record.meta[s.id]));
}

export function toLayoutView(
  layout: MemoryLayout | undefined,
  segments: SegmentsRecord,
): MemoryLayoutView {
  const current = layout ?? createMemoryLayout();
  const stats = layoutStats(current);
  return {
    layout: current,
    allocatedBytes: stats.allocatedBytes,
    freeBytes: stats.freeBytes,
    segments: segments.table.segments.length,
  };
}

/** The segment record stored as `raw`, or the empty one when there is none yet. */
export const segmentsOrEmpty = (raw: string | undefined): SegmentsRecord =>
  raw === undefined ? EMPTY_SEGMENTS : parseSegments(raw);

export const memoryWatchViews: WatchView[] = [
  {
    root: 'memory/',
    async view(key, raw, read) {
      if (`${STORE_ROOT}/${key}` === memoryKeys.segments) return toSegmentViews(parseSegments(raw));
      return toLayoutView(parseLayout(raw), segmentsOrEmpty(await read(memoryKeys.segments)));
    },
  },
];
