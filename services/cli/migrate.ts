/** `clusteradm migrate CPID --to NODE`: commit a move (epoch + 1); the agents carry it out. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';

import { parseCpid } from './proc-format.ts';

interface MigrateOptions extends AdminOptions {
  to: string;
}

export const migrate = defineCommand<MigrateOptions, [number]>({
  words: ['migrate'],
  summary: 'move a cluster process to another node (checkpoint or restart, fenced by its epoch)',
  configure(command) {
    command
      .argument('<cpid>', 'cluster PID', parseCpid)
      .requiredOption('--to <node>', 'the target node')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const [cpid] = args;
    const p = await withAdminClient(context, options, ({ processes }) =>
      processes.migrate(cpid, options.to),
    );
    context.stdout(
      options.output === 'json'
        ? toJson(p)
        : `process/${p.cpid} migrating ${p.migration?.from} -> ${p.home} (epoch ${p.epoch})\n`,
    );
  },
});
