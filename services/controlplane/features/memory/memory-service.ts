/**
 * The network memory space as users see it: the layout of node ranges, and
 * segments of cluster memory allocated inside those ranges. Segment changes
 * are one CAS over the layout and the segment table together; the decisions
 * are core/segments.ts's. Quotas per owner (`quotas.segmentsPerOwner`,
 * `quotas.segmentBytesPerOwner`) are counted from the segment table the same
 * CAS rewrites, so concurrent allocations never get past them.
 */
import { randomUUID } from 'node:crypto';
import type {
  AllocateSegmentRequest,
  MemoryLayoutView,
  SegmentView,
} from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import {
  createMemoryLayout,
  type LayoutStats,
  layoutStats,
  type MemoryLayout,
} from '../../../core/memory-layout.ts';
import { validateSegmentId } from '../../../core/names.ts';
import { allocateSegment, freeSegment, type Placement } from '../../../core/segments.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { Store } from '../../../store/store.ts';
import { DEFAULT_QUOTAS, type QuotaConfig } from '../../limits.ts';
import { actsOnAnything, authorize, ownerName } from '../../service/authz.ts';
import type { Caller, MemoryApi } from '../../service/contracts.ts';
import { putJson, updateAtomically } from '../../service/optimistic.ts';
import {
  EMPTY_SEGMENTS,
  memoryKeys,
  parseLayout,
  type SegmentsRecord,
  segmentsOrEmpty,
  toLayoutView,
  toSegmentView,
  toSegmentViews,
} from './records.ts';

/** 2^52 bytes: every address stays a safe integer. */
const MAX_SEGMENT_BYTES = 2 ** 52;

function validateSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > MAX_SEGMENT_BYTES) {
    throw new AmalgamError('INVALID_ARGUMENT', `size: an integer from 1 to ${MAX_SEGMENT_BYTES}`, {
      field: 'size',
    });
  }
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

/** QUOTA_EXCEEDED when one more segment of `size` would take `owner` past a quota. */
function checkQuota(record: SegmentsRecord, owner: string, size: number, quotas: QuotaConfig) {
  let count = 0;
  let bytes = 0;
  for (const segment of record.table.segments) {
    if (record.meta[segment.id]?.owner !== owner) continue;
    count += 1;
    bytes += segment.size;
  }
  const refuse = (quota: string, limit: number, current: number) => {
    throw new AmalgamError('QUOTA_EXCEEDED', `${owner} holds ${current} of ${limit} (${quota})`, {
      quota,
      limit,
      current,
      owner,
    });
  };
  if (count >= quotas.segmentsPerOwner) refuse('segmentsPerOwner', quotas.segmentsPerOwner, count);
  const maxBytes = quotas.segmentBytesPerOwner;
  if (maxBytes !== undefined && bytes + size > maxBytes) {
    refuse('segmentBytesPerOwner', maxBytes, bytes);
  }
}

export class MemoryService implements MemoryApi {
  readonly #store: Store;
  readonly #mirror: Mirror;
  readonly #now: () => number;
  readonly #quotas: QuotaConfig;

  constructor(options: {
    store: Store;
    mirror: Mirror;
    now: () => number;
    quotas?: Partial<QuotaConfig>;
  }) {
    this.#store = options.store;
    this.#mirror = options.mirror;
    this.#now = options.now;
    this.#quotas = { ...DEFAULT_QUOTAS, ...options.quotas };
  }

  async layout(caller: Caller): Promise<MemoryLayoutView> {
    authorize(caller, 'getMemoryLayout');
    const [layout, segments] = await Promise.all([
      this.#readRaw(memoryKeys.layout),
      this.#readSegments(),
    ]);
    return toLayoutView(layout === undefined ? undefined : parseLayout(layout), segments);
  }

  async allocateSegment(caller: Caller, request: AllocateSegmentRequest): Promise<SegmentView> {
    authorize(caller, 'allocateSegment');
    validateSize(request.size);
    const placement = validatePlacement(request.placement);
    const id = request.id ?? randomUUID();
    validateSegmentId(id, 'id');
    const owner = ownerName(caller);
    const read = [memoryKeys.layout, memoryKeys.segments];
    return updateAtomically(this.#store, read, (current) => {
      const layout = current.get<MemoryLayout>(memoryKeys.layout) ?? createMemoryLayout();
      const record = current.get<SegmentsRecord>(memoryKeys.segments) ?? EMPTY_SEGMENTS;
      const wanted = { id, size: request.size, placement };
      const allocation = allocateSegment(layout, record.table, wanted);
      if (!allocation.created) {
        return { writes: [], result: toSegmentView(allocation.segment, record.meta[id]) };
      }
      checkQuota(record, owner, request.size, this.#quotas);
      const meta = { owner, createdAt: this.#now() };
      const next: SegmentsRecord = {
        table: allocation.table,
        meta: { ...record.meta, [id]: meta },
      };
      return {
        writes: [putJson(memoryKeys.segments, next)],
        result: toSegmentView(allocation.segment, meta),
      };
    });
  }

  async listSegments(caller: Caller): Promise<SegmentView[]> {
    authorize(caller, 'listSegments');
    return toSegmentViews(await this.#readSegments());
  }

  async getSegment(caller: Caller, id: string): Promise<SegmentView> {
    authorize(caller, 'getSegment');
    validateSegmentId(id, 'id');
    const record = await this.#readSegments();
    const segment = record.table.segments.find((s) => s.id === id);
    if (!segment) throw new AmalgamError('SEGMENT_NOT_FOUND', id, { field: 'id' });
    return toSegmentView(segment, record.meta[id]);
  }

  async freeSegment(caller: Caller, id: string): Promise<void> {
    authorize(caller, 'freeSegment');
    validateSegmentId(id, 'id');
    await updateAtomically(this.#store, [memoryKeys.segments], (current) => {
      const record = current.get<SegmentsRecord>(memoryKeys.segments) ?? EMPTY_SEGMENTS;
      const owner = record.meta[id]?.owner;
      if (owner !== undefined && !actsOnAnything(caller) && owner !== ownerName(caller)) {
        throw new AmalgamError('FORBIDDEN', `segment ${id} belongs to ${owner}`);
      }
      const { table } = freeSegment(record.table, id);
      const { [id]: _gone, ...meta } = record.meta;
      return { writes: [putJson(memoryKeys.segments, { table, meta })], result: undefined };
    });
  }

  /** Allocated and free bytes of the address space, from the mirror (for /metrics). */
  async spaceStats(): Promise<LayoutStats> {
    await this.#mirror.sync();
    const raw = this.#mirror.get(memoryKeys.layout)?.value;
    return layoutStats(raw === undefined ? createMemoryLayout() : parseLayout(raw));
  }

  async #readRaw(key: string): Promise<string | undefined> {
    return (await this.#store.get(key))?.value;
  }

  async #readSegments(): Promise<SegmentsRecord> {
    return segmentsOrEmpty(await this.#readRaw(memoryKeys.segments));
  }
}
