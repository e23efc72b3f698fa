/**
 * `clusteradm mem routes`: the routes native programs use to reach network
 * memory (netmem-run --routes-file, netmem-tool), from the layout and the
 * page servers the nodes publish; `--map SEGMENT` prints the segment's
 * `--map` spec for netmem-run instead.
 */
import { formatRoutesFile, netmemMapSpec, netmemRoutes } from '../client/netmem-routes.ts';
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';

interface Options extends AdminOptions {
  map?: string;
}

export const memRoutes = defineCommand<Options>({
  words: ['mem', 'routes'],
  summary:
    'print the netmem routes file (START:SIZE=NODE@HOST:PORT per node range), or --map SEGMENT',
  configure(command) {
    command
      .option('--map <segment>', "print this segment's extents as a netmem-run --map spec")
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { options }) {
    if (options.map !== undefined) {
      const id = options.map;
      const segment = await withAdminClient(context, options, (c) => c.memory.getSegment(id));
      const spec = netmemMapSpec(segment);
      context.stdout(
        options.output === 'json' ? toJson({ segment: segment.id, map: spec }) : `${spec}\n`,
      );
      return;
    }
    const routes = await withAdminClient(context, options, async (c) =>
      netmemRoutes(await c.memory.layout(), await c.nodes.list()),
    );
    if (options.output === 'json') {
      context.stdout(toJson({ items: routes }));
      return;
    }
    for (const r of routes.filter((x) => x.address === null)) {
      context.stderr(`# ${r.node}: no page server published; its range is left out\n`);
    }
    context.stdout(formatRoutesFile(routes));
  },
});
