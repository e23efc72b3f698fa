/** `clusteradm nodes`: every node with its state and range of the network memory space. */
import { defineListCommand } from './list-command.ts';
import { NODE_COLUMNS, nodeRow } from './node-format.ts';

export const nodesList = defineListCommand({
  words: ['nodes'],
  summary: 'list the nodes of the cluster',
  fetch: (client) => client.nodes.list(),
  columns: NODE_COLUMNS,
  row: nodeRow,
});
