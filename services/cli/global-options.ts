/**
 * Options clusteradm takes before or after the command's words:
 * `clusteradm --home DIR nodes` and `clusteradm nodes --home DIR` are the
 * same. The program declares them (it parses up to the first command word
 * only: `enablePositionalOptions`, so `run -- CMD --home` stays the
 * command's); each command still declares them too, with its own help text.
 * `withGlobalOptions` then decides, purely, what the command sees.
 */
import { type Command, Option } from 'commander';
import { usageError } from './errors.ts';
import { OUTPUT_FORMATS } from './output.ts';

/** The option names (commander's attribute names) that may come before the command. */
export const GLOBAL_OPTION_NAMES = ['home', 'config', 'output'] as const;

export function declareGlobalOptions(program: Command): Command {
  return program
    .enablePositionalOptions()
    .option('--home <dir>', 'the home directory of the command (see each command)')
    .option('--config <file>', 'admin configuration (commands that call the API)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS));
}

/** How a command's option got its value (commander's `getOptionValueSource`). */
export type ValueSource = 'default' | 'config' | 'env' | 'cli' | 'implied' | undefined;

export interface CommandOptions {
  /** The command's parsed options. */
  values: Record<string, unknown>;
  sourceOf(name: string): ValueSource;
  /** The command declares this option. */
  declares(name: string): boolean;
  /** For messages: `node describe`. */
  name: string;
}

/**
 * The command's options with the global ones given before its words: a
 * value given after the words wins (the last one given, as on one command
 * line); a global option the command does not take is a usage error.
 */
export function withGlobalOptions(
  globals: Record<string, unknown>,
  command: CommandOptions,
): Record<string, unknown> {
  const merged = { ...command.values };
  for (const name of GLOBAL_OPTION_NAMES) {
    const value = globals[name];
    if (value === undefined) continue;
    if (!command.declares(name)) {
      throw usageError(`clusteradm ${command.name} does not take --${name}`);
    }
    if (command.sourceOf(name) !== 'cli') merged[name] = value;
  }
  return merged;
}

/** The facts `withGlobalOptions` needs, read off a parsed commander command. */
export function commandOptionsOf(command: Command): CommandOptions {
  const words: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) words.unshift(c.name());
  return {
    values: command.opts(),
    sourceOf: (name) => command.getOptionValueSource(name) as ValueSource,
    declares: (name) => command.options.some((o) => o.attributeName() === name),
    name: words.join(' '),
  };
}
