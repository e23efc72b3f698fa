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
    if (options.output === 'json') {
      const view = await withAdminClient(context, options, (client) => client.memory.layout());
      context.stdout(toJson(view));
      return;
    }
    const [view, segments] = await withAdminClient(context, options, (client) =>
      Promise.all([client.memory.layout(), client.memory.listSegments()]),
    );
    const { layout } = view;
    const space = { start: layout.spaceStart, size: layout.spaceEnd - layout.spaceStart };
    const segmentBytes = segments.reduce((sum, s) => sum + s.size, 0);
    const used = new Map<string, number>();
    for (const extent of segments.flatMap((s) => s.extents)) {
      used.set(extent.node, (used.get(extent.node) ?? 0) + extent.size);
    }
    context.stdout(
      renderFields([
        ['Space', `${formatRange(space)} (${formatBytes(space.size)})`],
        ['Node ranges', `${formatBytes(view.allocatedBytes)} in ${layout.ranges.length} range(s)`],
        ['Unassigned', formatBytes(view.freeBytes)],
        ['Segments', `${view.segments} (${formatBytes(segmentBytes)})`],
      ]),
    );
    if (layout.ranges.length > 0) {
      context.stdout('\n');
      context.stdout(
        renderTable(
          ['NODE', 'RANGE', 'SIZE', 'IN SEGMENTS'],
          layout.ranges.map((r) => [
            r.node,
            formatRange(r),
            formatBytes(r.size),
            formatBytes(used.get(r.node) ?? 0),
          ]),
        ),
      );
    }
  },
});
