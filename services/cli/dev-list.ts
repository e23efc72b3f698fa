/** `clusteradm dev ls [NODE]`: every device of the cluster (or of one node) and its export policy. */
import { DEVICE_COLUMNS, deviceRow } from './device-format.ts';
import { defineListCommand } from './list-command.ts';

export const devList = defineListCommand({
  words: ['dev', 'ls'],
  summary: 'list the devices of every node (or of NODE), exported or not',
  argument: { name: '[node]', description: 'only this node' },
  fetch: (client, node) => client.devices.list(node),
  columns: DEVICE_COLUMNS,
  row: deviceRow,
});
