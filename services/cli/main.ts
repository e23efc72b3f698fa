/**
 * clusteradm: bootstraps a cluster and administers it through the public API.
 *
 * `runClusteradm(argv)` parses, runs one command and returns the exit code
 * (0 done, 1 failed, 2 usage) instead of exiting, so tests call it in process
 * and `bin/clusteradm.mjs` sets `process.exitCode` from it.
 */
import { Command } from 'commander';
import { COMMANDS, GROUPS } from './commands.ts';
import { type CliContext, processContext } from './context.ts';
import { EXIT_OK, reportError } from './errors.ts';
import { commandOptionsOf, declareGlobalOptions, withGlobalOptions } from './global-options.ts';

export function buildProgram(context: CliContext): Command {
  const program = declareGlobalOptions(
    new Command('clusteradm')
      .description('bootstrap and administer an amalgam cluster')
      .exitOverride()
      .configureOutput({ writeOut: context.stdout, writeErr: context.stderr })
      .showHelpAfterError('(add --help for usage)'),
  );
  for (const spec of COMMANDS) {
    let parent = program;
    for (const word of spec.words.slice(0, -1)) {
      parent =
        parent.commands.find((c) => c.name() === word) ??
        parent.command(word).description(GROUPS[word] ?? '');
    }
    const command = parent.command(spec.words.at(-1) as string).description(spec.summary);
    spec.configure(command);
    command.action(async (...params: unknown[]) => {
      const self = params.at(-1) as Command;
      const options = withGlobalOptions(program.opts(), commandOptionsOf(self));
      await spec.run(context, { args: self.processedArgs, options });
    });
  }
  return program;
}

export async function runClusteradm(
  argv: string[],
  context: CliContext = processContext(),
): Promise<number> {
  const program = buildProgram(context);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    return reportError(err, context.stderr);
  }
}
