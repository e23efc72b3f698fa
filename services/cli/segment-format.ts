/** How segments print, shared by `mem alloc` and `mem list`. */
import type { SegmentView } from '../api/contracts.ts';
import { formatAge, formatBytes, formatRange } from './units.ts';

export const SEGMENT_COLUMNS = ['ID', 'SIZE', 'PLACEMENT', 'EXTENTS', 'OWNER', 'AGE'];

export function placementText(segment: SegmentView): string {
  return segment.placement.mode === 'pinned' ? `pinned:${segment.placement.node}` : 'spread';
}

export function segmentRow(segment: SegmentView, now: number): string[] {
  return [
    segment.id,
    formatBytes(segment.size),
    placementText(segment),
    segment.extents.map((e) => `${e.node}:${formatRange(e)}`).join(','),
    segment.owner,
    formatAge(segment.createdAt, now),
  ];
}
