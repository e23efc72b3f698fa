/** `clusteradm mem list`: the allocated segments and where their extents are. */
import { defineListCommand } from './list-command.ts';
import { SEGMENT_COLUMNS, segmentRow } from './segment-format.ts';

export const memList = defineListCommand({
  words: ['mem', 'list'],
  summary: 'list the segments of network memory',
  fetch: (client) => client.memory.listSegments(),
  columns: SEGMENT_COLUMNS,
  row: segmentRow,
});
