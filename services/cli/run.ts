/** `clusteradm run [--node N|--label K=V] [--cpus C] [--migratable M] [--user U] -- CMD ARGS`: start a cluster process on the best node. */
import { Option } from 'commander';
import { MIGRATABLE, type Migratable } from '../core/processes.ts';
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { usageError } from './errors.ts';
import { outputOption, toJson } from './output.ts';

interface RunOptions extends AdminOptions {
  node?: string;
  label: string[];
  cpus?: string;
  migratable: Migratable;
  user?: string;
}

export const run = defineCommand<RunOptions, [string[]]>({
  words: ['run'],
  summary: 'start a process on the best node (free CPU x speed, labels respected)',
  configure(command) {
    command
      .argument('<command...>', 'the command and its arguments (after --)')
      .option('--node <name>', 'run it on this node')
      .option(
        '--label <key=value>',
        'only on nodes with this label (role=X matches a node role); repeatable',
        (value: string, previous: string[]) => [...previous, value],
        [],
      )
      .option('--cpus <n>', 'CPUs it uses (its weight for placement and rebalancing)', '1')
      .addOption(
        new Option('--migratable <how>', 'how it may move').choices(MIGRATABLE).default('restart'),
      )
      .option(
        '--user <name>',
        "the user it runs as on its node (default the node's processes.defaultUser, nobody; root only for an admin on a node with processes.allowRoot)",
      )
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const [argv] = args;
    const [cmd, ...rest] = argv;
    if (!cmd) throw usageError('a command is required: clusteradm run -- CMD ARGS');
    const labels: Record<string, string> = {};
    for (const l of options.label) {
      const i = l.indexOf('=');
      if (i <= 0) throw usageError(`--label ${l}: KEY=VALUE`);
      labels[l.slice(0, i)] = l.slice(i + 1);
    }
    const cpus = Number(options.cpus ?? '1');
    if (!(cpus > 0)) throw usageError('--cpus: a number > 0');
    const p = await withAdminClient(context, options, ({ processes }) =>
      processes.create({
        command: cmd,
        args: rest,
        migratable: options.migratable,
        cpus,
        labels,
        ...(options.node !== undefined ? { node: options.node } : {}),
        ...(options.user !== undefined ? { user: options.user } : {}),
      }),
    );
    context.stdout(
      options.output === 'json' ? toJson(p) : `process/${p.cpid} placed on ${p.home}\n`,
    );
  },
});
