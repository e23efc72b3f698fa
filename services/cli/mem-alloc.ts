/** `clusteradm mem alloc SIZE`: a segment of cluster memory, spread over the nodes or pinned to one. */
import { InvalidArgumentError } from 'commander';
import type { AllocateSegmentRequest } from '../api/contracts.ts';
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, renderTable, toJson } from './output.ts';
import { SEGMENT_COLUMNS, segmentRow } from './segment-format.ts';
import { parseSize } from './units.ts';

interface Options extends AdminOptions {
  pinned?: string;
  id?: string;
}

export const memAlloc = defineCommand<Options, [number]>({
  words: ['mem', 'alloc'],
  summary: 'allocate a segment of network memory (rounded up to 4 KiB pages)',
  configure(command) {
    command
      .argument('<size>', 'bytes: 4096, 64Mi, 1.5Gi, 500M', (text: string) => {
        const size = parseSize(text);
        if (size < 1) throw new InvalidArgumentError('a size of at least 1 byte is required');
        return size;
      })
      .option('--pinned <node>', 'place the whole segment on this node (default: spread)')
      .option('--id <id>', 'segment id; resending with the same id does not allocate twice')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const request: AllocateSegmentRequest = {
      size: args[0],
      ...(options.pinned === undefined
        ? {}
        : { placement: { mode: 'pinned', node: options.pinned } }),
      ...(options.id === undefined ? {} : { id: options.id }),
    };
    const segment = await withAdminClient(context, options, (client) =>
      client.memory.allocateSegment(request),
    );
    context.stdout(
      options.output === 'json'
        ? toJson(segment)
        : renderTable(SEGMENT_COLUMNS, [segmentRow(segment, context.now())]),
    );
  },
});
