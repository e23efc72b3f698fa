/**
 * The shape every `clusteradm` list shares: fetch the items as admin, print
 * `{items}` with `-o json`, else a table of one row per item. A list may take
 * one optional argument that narrows it (`dev ls [NODE]`), passed to `fetch`.
 */
import type { AmalgamClient } from '../client/index.ts';
import {
  type AdminOptions,
  adminOptions,
  type CliCommand,
  defineCommand,
  withAdminClient,
} from './context.ts';
import { outputOption, renderTable, toJson } from './output.ts';

export function defineListCommand<T>(spec: {
  words: string[];
  summary: string;
  /** An optional positional argument, e.g. `{ name: '[node]', description: 'only this node' }`. */
  argument?: { name: string; description: string };
  fetch: (client: AmalgamClient, argument: string | undefined) => Promise<T[]>;
  columns: string[];
  row: (item: T, now: number) => string[];
}): CliCommand<AdminOptions, [string | undefined]> {
  return defineCommand<AdminOptions, [string | undefined]>({
    words: spec.words,
    summary: spec.summary,
    configure(command) {
      if (spec.argument) command.argument(spec.argument.name, spec.argument.description);
      command.addOption(outputOption());
      adminOptions(command);
    },
    async run(context, { args: [argument], options }) {
      const items = await withAdminClient(context, options, (client) =>
        spec.fetch(client, argument),
      );
      if (options.output === 'json') {
        context.stdout(toJson({ items }));
        return;
      }
      const now = context.now();
      context.stdout(
        renderTable(
          spec.columns,
          items.map((item) => spec.row(item, now)),
        ),
      );
    },
  });
}
