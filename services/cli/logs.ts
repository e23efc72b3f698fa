/** `clusteradm logs CPID [-f]`: the process's output, from the agent of the node it runs on. */

import { ClientError } from '../client/errors.ts';
import { fetchProcessLog } from '../client/process-logs.ts';
import { type AdminOptions, adminOptions, defineCommand } from './context.ts';
import { outputOption, toJson } from './output.ts';
import { withProcessClient } from './proc-context.ts';
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
    await withProcessClient(context, options, async (client, tls) => {
      const record = await client.get(cpid);
      const node = options.node ?? record.home;
      const address = (await client.listLoads()).find((l) => l.node === node)?.agentAddress;
      if (!address) {
        throw new ClientError('UNAVAILABLE', `the agent of ${node} has not published its endpoint`);
      }
      const json = options.output === 'json';
      const stream = await fetchProcessLog(
        tls,
        node,
        address,
        cpid,
        options.follow === true && !json,
      );
      let text = '';
      for await (const chunk of stream) {
        if (json) text += String(chunk);
        else context.stdout(String(chunk));
      }
      if (json) context.stdout(toJson({ cpid, node, output: text }));
    });
  },
});
