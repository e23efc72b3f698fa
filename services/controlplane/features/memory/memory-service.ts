/**
 * The network memory space as users see it: the layout of node ranges, and
 * segments of cluster memory allocated inside those ranges. Segment changes
 * are one CAS over the layout and the segment table together.
 */
import { randomUUID } from 'node:crypto';
import type {
  AllocateSegmentRequest,
  Caller,
  ControlPlane,
  MemoryLayoutView,
  SegmentView,
} from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { createMemoryLayout, layoutStats, type MemoryLayout } from '../../../core/memory-layout.ts';
import { validateSegmentId } from '../../../core/names.ts';
import {
  allocateSegment,
  createSegmentTable,
  freeSegment,
  type Placement,
  type Segment,
  type SegmentTable,
} from '../../../core/segments.ts';
import type { Store } from '../../../store/store.ts';
import { ownerName, requireMember } from '../../service/authz.ts';
import { keys } from '../../service/keys.ts';
import { putJson, readJson, updateAtomically } from '../../service/optimistic.ts';

/** The stored segment table plus who made each segment and when. */
export interface SegmentsRecord {
  table: SegmentTable;
  meta: Record<string, { owner: string; createdAt: number }>;
}

const EMPTY: SegmentsRecord = { table: createSegmentTable(), meta: {} };
/** 2^52 bytes: every address stays a safe integer. */
const MAX_SEGMENT_BYTES = 2 ** 52;

function view(segment: Segment, meta: SegmentsRecord['meta'][string] | undefined): SegmentView {
  return {
    id: segment.id,
    size: segment.size,
    placement: segment.placement,
    extents: segment.extents,
    owner: meta?.owner ?? 'unknown',
    createdAt: new Date(meta?.createdAt ?? 0).toISOString(),
  };
}

function validatePlacement(placement: unknown): Placement {
  if (placement === undefined) return { mode: 'spread' };
  const p = placement as Placement;
  if (typeof p === 'object' && p !== null && p.mode === 'spread') return { mode: 'spread' };
  if (typeof p === 'object' && p !== null && p.mode === 'pinned' && typeof p.node === 'string') {
    return { mode: 'pinned', node: p.node };
  }
  throw new AmalgamError(
    'INVALID_ARGUMENT',
    "placement: {mode:'spread'} or {mode:'pinned', node}",
    {
      field: 'placement',
    },
  );
}

export function createMemoryService(store: Store, now: () => number): ControlPlane['memory'] {
  async function readSegments(): Promise<SegmentsRecord> {
    return (await readJson<SegmentsRecord>(store, keys.segments)) ?? EMPTY;
  }

  return {
    async layout(caller: Caller): Promise<MemoryLayoutView> {
      requireMember(caller);
      const [layout, segments] = await Promise.all([
        readJson<MemoryLayout>(store, keys.layout),
        readSegments(),
      ]);
      const current = layout ?? createMemoryLayout();
      const stats = layoutStats(current);
      return {
        layout: current,
        allocatedBytes: stats.allocatedBytes,
        freeBytes: stats.freeBytes,
        segments: segments.table.segments.length,
      };
    },

    async allocateSegment(caller: Caller, request: AllocateSegmentRequest): Promise<SegmentView> {
      requireMember(caller);
      if (
        !Number.isSafeInteger(request.size) ||
        request.size < 1 ||
        request.size > MAX_SEGMENT_BYTES
      ) {
        throw new AmalgamError(
          'INVALID_ARGUMENT',
          `size: an integer from 1 to ${MAX_SEGMENT_BYTES}`,
          {
            field: 'size',
          },
        );
      }
      const placement = validatePlacement(request.placement);
      const id = request.id ?? randomUUID();
      validateSegmentId(id, 'id');
      const owner = ownerName(caller);
      return updateAtomically(store, [keys.layout, keys.segments], (current) => {
        const layout = current.get<MemoryLayout>(keys.layout) ?? createMemoryLayout();
        const record = current.get<SegmentsRecord>(keys.segments) ?? EMPTY;
        const allocation = allocateSegment(layout, record.table, {
          id,
          size: request.size,
          placement,
        });
        if (!allocation.created) {
          return { writes: [], result: view(allocation.segment, record.meta[id]) };
        }
        const meta = { owner, createdAt: now() };
        const next: SegmentsRecord = {
          table: allocation.table,
          meta: { ...record.meta, [id]: meta },
        };
        return { writes: [putJson(keys.segments, next)], result: view(allocation.segment, meta) };
      });
    },

    async listSegments(caller: Caller): Promise<SegmentView[]> {
      requireMember(caller);
      const record = await readSegments();
      return record.table.segments.map((s) => view(s, record.meta[s.id]));
    },

    async getSegment(caller: Caller, id: string): Promise<SegmentView> {
      requireMember(caller);
      validateSegmentId(id, 'id');
      const record = await readSegments();
      const segment = record.table.segments.find((s) => s.id === id);
      if (!segment) throw new AmalgamError('SEGMENT_NOT_FOUND', id, { field: 'id' });
      return view(segment, record.meta[id]);
    },

    async freeSegment(caller: Caller, id: string): Promise<void> {
      requireMember(caller);
      validateSegmentId(id, 'id');
      await updateAtomically(store, [keys.segments], (current) => {
        const record = current.get<SegmentsRecord>(keys.segments) ?? EMPTY;
        const owner = record.meta[id]?.owner;
        if (owner !== undefined && caller.kind !== 'admin' && owner !== ownerName(caller)) {
          throw new AmalgamError('FORBIDDEN', `segment ${id} belongs to ${owner}`);
        }
        const { table } = freeSegment(record.table, id);
        const { [id]: _gone, ...meta } = record.meta;
        return { writes: [putJson(keys.segments, { table, meta })], result: undefined };
      });
    },
  };
}
