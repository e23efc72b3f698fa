/** `clusteradm mem layout`: the network memory space, one range per node. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, renderFields, renderTable, toJson } from './output.ts';
import { formatBytes, formatRange } from './units.ts';

export const memLayout = defineCommand<AdminOptions>({
  words: ['mem', 'layout'],
  summary: 'show the network memory space: ranges per node, allocated and free bytes',
  configure(command) {
    command.addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { options }) {
    const view = await withAdminClient(context, options, (client) => client.memory.layout());
    if (options.output === 'json') {
      context.stdout(toJson(view));
      return;
    }
    const { layout } = view;
    const space = { start: layout.spaceStart, size: layout.spaceEnd - layout.spaceStart };
    const contributed = layout.ranges.reduce((sum, r) => sum + r.size, 0);
    context.stdout(
      renderFields([
        ['Space', `${formatRange(space)} (${formatBytes(space.size)})`],
        ['Contributed', `${formatBytes(contributed)} by ${layout.ranges.length} node(s)`],
        ['Allocated', `${formatBytes(view.allocatedBytes)} in ${view.segments} segment(s)`],
        ['Free', formatBytes(view.freeBytes)],
      ]),
    );
    if (layout.ranges.length > 0) {
      context.stdout('\n');
      context.stdout(
        renderTable(
          ['NODE', 'RANGE', 'SIZE'],
          layout.ranges.map((r) => [r.node, formatRange(r), formatBytes(r.size)]),
        ),
      );
    }
  },
});
