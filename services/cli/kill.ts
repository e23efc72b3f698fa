/** `clusteradm kill CPID`: end a cluster process wherever it runs. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';

import { parseCpid } from './proc-format.ts';

export const kill = defineCommand<AdminOptions, [number]>({
  words: ['kill'],
  summary: 'kill a cluster process (its node stops every copy)',
  configure(command) {
    command.argument('<cpid>', 'cluster PID', parseCpid).addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const [cpid] = args;
    const p = await withAdminClient(context, options, ({ processes }) => processes.kill(cpid));
    context.stdout(options.output === 'json' ? toJson(p) : `process/${p.cpid} ${p.state}\n`);
  },
});
