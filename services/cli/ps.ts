/** `clusteradm ps`: every cluster process, like one machine's ps, with its node and CPU use. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, renderTable, toJson } from './output.ts';

import { PROCESS_COLUMNS, processRow } from './proc-format.ts';

interface PsOptions extends AdminOptions {
  all?: boolean;
}

export const ps = defineCommand<PsOptions, []>({
  words: ['ps'],
  summary: 'list the cluster processes (-a: also those that ended)',
  configure(command) {
    command.option('-a, --all', 'also processes that exited, failed or were killed');
    command.addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { options }) {
    const [records, loads] = await withAdminClient(context, options, ({ processes }) =>
      Promise.all([processes.list(), processes.listLoads()]),
    );
    const shown = options.all
      ? records
      : records.filter((r) => r.state !== 'exited' && r.state !== 'failed' && r.state !== 'killed');
    if (options.output === 'json') {
      context.stdout(toJson({ items: shown }));
      return;
    }
    const cpu = new Map<number, number>();
    for (const l of loads) for (const p of l.processes) cpu.set(p.cpid, p.cpu);
    const now = context.now();
    context.stdout(
      renderTable(
        PROCESS_COLUMNS,
        shown.map((r) => processRow(r, now, cpu.get(r.cpid))),
      ),
    );
  },
});
