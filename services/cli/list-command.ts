/**
 * The shape every `clusteradm` list shares: fetch the items as admin, print
 * `{items}` with `-o json`, else a table of one row per item.
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
  fetch: (client: AmalgamClient) => Promise<T[]>;
  columns: string[];
  row: (item: T, now: number) => string[];
}): CliCommand<AdminOptions> {
  return defineCommand<AdminOptions>({
    words: spec.words,
    summary: spec.summary,
    configure(command) {
      command.addOption(outputOption());
      adminOptions(command);
    },
    async run(context, { options }) {
      const items = await withAdminClient(context, options, spec.fetch);
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
