/** How nodes print, shared by `nodes` and `node describe|drain`. */
import type { NodeView } from '../api/contracts.ts';
import { renderFields } from './output.ts';
import { formatAge, formatBytes, formatRange } from './units.ts';

export const NODE_COLUMNS = [
  'NAME',
  'STATE',
  'ROLES',
  'CONTRIBUTED',
  'RANGE',
  'CPUS',
  'LOAD',
  'AGE',
];

export function nodeRow(node: NodeView, now: number): string[] {
  return [
    node.name,
    node.state,
    node.roles.length > 0 ? node.roles.join(',') : '<none>',
    formatBytes(node.capacity.contributedBytes),
    formatRange(node.range),
    String(node.capacity.cpus),
    node.load ? node.load.load1.toFixed(2) : '-',
    formatAge(node.joinedAt, now),
  ];
}

export function describeNode(node: NodeView, now: number): string {
  const labels = Object.entries(node.labels);
  const { capacity, load } = node;
  return renderFields([
    ['Name', node.name],
    ['State', node.state],
    ['Roles', node.roles.length > 0 ? node.roles.join(',') : '<none>'],
    ['Labels', labels.length > 0 ? labels.map(([k, v]) => `${k}=${v}`).join(',') : '<none>'],
    ['Identity', node.identity],
    ['Joined', `${node.joinedAt} (${formatAge(node.joinedAt, now)} ago)`],
    [
      'Last heartbeat',
      node.lastHeartbeatAt === null
        ? '<never>'
        : `${node.lastHeartbeatAt} (${formatAge(node.lastHeartbeatAt, now)} ago)`,
    ],
    [
      'Range',
      `${formatRange(node.range)} (${formatBytes(node.range.size)}, ${node.range.size} bytes)`,
    ],
    [
      'Capacity',
      [
        ['Memory', formatBytes(capacity.memoryBytes)],
        ['Swap', formatBytes(capacity.swapBytes)],
        ['Contributed', formatBytes(capacity.contributedBytes)],
        ['CPUs', String(capacity.cpus)],
        ['CPU speed', String(capacity.cpuSpeed)],
      ],
    ],
    [
      'Load',
      load === null
        ? '<none reported>'
        : [
            ['Load average', `${load.load1} ${load.load5} ${load.load15}`],
            ['Memory used', formatBytes(load.memoryUsedBytes)],
            ['Processes', String(load.processes)],
          ],
    ],
  ]);
}
