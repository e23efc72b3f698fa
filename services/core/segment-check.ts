/**
 * The segment table's invariants, checked against the memory layout: what a
 * test or an operator runs to prove a table sound.
 */
import { isAligned, type MemoryLayout, rangeOf } from './memory-layout.ts';
import { isValidNodeName } from './names.ts';
import {
  EXTENT_ALIGNMENT,
  type Extent,
  extentFootprint,
  PAGE_SIZE,
  type Segment,
  type SegmentTable,
  type SegmentViolation,
} from './segment-types.ts';

/** The addresses an extent's footprint covers, and whose it is. */
interface Span {
  start: number;
  end: number;
  segment: string;
}

/**
 * Every way `table` breaks the rules against `layout`; empty when sound.
 * Checks sizes and alignment, that every extent's footprint lies inside its
 * node's range, that no two footprints overlap, and pinned placement.
 */
export function checkSegments(layout: MemoryLayout, table: SegmentTable): SegmentViolation[] {
  const out: SegmentViolation[] = [];
  const ids = new Set<string>();
  const spans: Span[] = [];
  for (const s of table.segments) {
    if (ids.has(s.id)) {
      out.push({
        kind: 'duplicate-id',
        segment: s.id,
        message: `segment id ${s.id} is used twice`,
      });
    }
    ids.add(s.id);
    out.push(...checkSegment(layout, s, spans));
  }
  out.push(...overlaps(spans));
  return out;
}

/** One segment's own rules; adds the spans of its well-formed extents to `spans`. */
function checkSegment(layout: MemoryLayout, s: Segment, spans: Span[]): SegmentViolation[] {
  const segment = s.id;
  if (!isAligned(s.size, PAGE_SIZE) || s.size <= 0 || s.extents.length === 0) {
    return [
      {
        kind: 'invalid-segment',
        segment,
        message: `segment ${segment} needs a positive size in whole pages and at least one extent`,
      },
    ];
  }
  const out: SegmentViolation[] = [];
  if (s.placement.mode === 'pinned' && !isValidNodeName(s.placement.node)) {
    out.push({ kind: 'invalid-segment', segment, message: 'pinned placement names no node' });
  }
  let total = 0;
  s.extents.forEach((e, i) => {
    total += e.size;
    const checked = checkExtent(layout, s, e, i);
    out.push(...checked.violations);
    if (checked.span) spans.push(checked.span);
  });
  if (total !== s.size) {
    out.push({
      kind: 'size-mismatch',
      segment,
      message: `extents of ${segment} hold ${total} bytes, its size is ${s.size}`,
    });
  }
  return out;
}

/** Extent `i` of `s`: aligned, inside its node's range, on the pinned node; its span if aligned. */
function checkExtent(
  layout: MemoryLayout,
  s: Segment,
  e: Extent,
  i: number,
): { violations: SegmentViolation[]; span?: Span } {
  const segment = s.id;
  const node = e.node;
  const isLast = i === s.extents.length - 1;
  if (
    !isAligned(e.start, EXTENT_ALIGNMENT) ||
    !isAligned(e.size, isLast ? PAGE_SIZE : EXTENT_ALIGNMENT) ||
    e.size <= 0
  ) {
    const message = `extent ${i} [${e.start}, +${e.size}) of ${segment} is misaligned`;
    return { violations: [{ kind: 'misaligned', segment, node, message }] };
  }
  const violations: SegmentViolation[] = [];
  const range = rangeOf(layout, node);
  const end = e.start + extentFootprint(e);
  if (!range || e.start < range.start || end > range.start + range.size) {
    violations.push({
      kind: 'outside-node',
      segment,
      node,
      message: `extent ${i} of ${segment} is not inside the range of node ${node}`,
    });
  }
  if (s.placement.mode === 'pinned' && node !== s.placement.node) {
    violations.push({
      kind: 'placement',
      segment,
      node,
      message: `segment ${segment} is pinned to ${s.placement.node} but has an extent on ${node}`,
    });
  }
  return { violations, span: { start: e.start, end, segment } };
}

/** Spans that begin before an earlier one (in address order) ends. */
function overlaps(spans: Span[]): SegmentViolation[] {
  const out: SegmentViolation[] = [];
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  let reach = -Infinity;
  let reachSegment = '';
  for (const span of sorted) {
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
