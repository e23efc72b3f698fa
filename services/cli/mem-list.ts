/** `clusteradm mem list`: the allocated segments and where their extents are. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, renderTable, toJson } from './output.ts';
import { SEGMENT_COLUMNS, segmentRow } from './segment-format.ts';

export const memList = defineCommand<AdminOptions>({
  words: ['mem', 'list'],
  summary: 'list the segments of network memory',
  configure(command) {
    command.addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { options }) {
    const items = await withAdminClient(context, options, (client) => client.memory.listSegments());
    if (options.output === 'json') {
      context.stdout(toJson({ items }));
      return;
    }
    const now = context.now();
    context.stdout(
      renderTable(
        SEGMENT_COLUMNS,
        items.map((s) => segmentRow(s, now)),
      ),
    );
  },
});
