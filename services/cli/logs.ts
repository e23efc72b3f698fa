/** `clusteradm logs CPID [-f]`: the process's output, from the agent of the node it runs on. */

import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';
import { parseCpid } from './proc-format.ts';

interface LogsOptions extends AdminOptions {
  follow?: boolean;
  node?: string;
}

export const logs = defineCommand<LogsOptions, [number]>({
  words: ['logs'],
  summary: "print a cluster process's stdout and stderr (-f: follow while it runs)",
  configure(command) {
    command
      .argument('<cpid>', 'cluster PID', parseCpid)
      .option('-f, --follow', 'keep printing while the process runs there')
      .option('--node <name>', 'the node whose part to print (default: its current home)')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const [cpid] = args;
    const json = options.output === 'json';
    await withAdminClient(context, options, async ({ processes }) => {
      const { node, stream } = await processes.logs(cpid, {
        ...(options.node === undefined ? {} : { node: options.node }),
        follow: options.follow === true && !json,
      });
      let text = '';
      for await (const chunk of stream) {
        if (json) text += String(chunk);
        else context.stdout(String(chunk));
      }
      if (json) context.stdout(toJson({ cpid, node, output: text }));
    });
  },
});
