/**
 * What a clusteradm command gets to work with, and the shape every command
 * file exports. Commands never touch `process` directly: the context carries
 * the output streams, the environment and the clock, so tests run them in
 * process.
 */
import { homedir, hostname } from 'node:os';
import type { Command } from 'commander';
import { type AmalgamClient, createClient } from '../client/index.ts';
import { type Environment, loadAdminConfig, resolveAdminConfigPath } from './config.ts';
import type { OutputFormat } from './output.ts';

export interface CliContext extends Environment {
  stdout(text: string): void;
  stderr(text: string): void;
  now(): number;
  hostname(): string;
}

export interface CommandInput<O, A extends unknown[]> {
  /** Positional arguments in declared order, as their parsers returned them. */
  args: A;
  options: O;
}

/** One noun-verb of clusteradm; every file of this folder named like `token-create.ts` exports one. */
// biome-ignore lint/suspicious/noExplicitAny: a list of commands holds every option and argument type.
export interface CliCommand<O = any, A extends unknown[] = any[]> {
  /** The words that invoke it: `['token', 'create']`. */
  words: string[];
  summary: string;
  /** Declares its arguments and options on the commander command made for it. */
  configure(command: Command): void;
  run(context: CliContext, input: CommandInput<O, A>): Promise<void>;
}

/** Types a command's options (`O`) and arguments (`A`, default: strings). */
export function defineCommand<O, A extends unknown[] = string[]>(
  command: CliCommand<O, A>,
): CliCommand<O, A> {
  return command;
}

/** Options every command that calls the API as admin accepts. */
export interface AdminOptions {
  config?: string;
  home?: string;
  output: OutputFormat;
}

export function adminOptions(command: Command): void {
  command
    .option(
      '--config <file>',
      'admin configuration (default: $AMALGAM_CONFIG or <home>/admin.json)',
    )
    .option('--home <dir>', 'admin home (default: $AMALGAM_HOME or ~/.amalgam)');
}

/** Runs `fn` with a client authenticated by the admin credential, and closes it. */
export async function withAdminClient<T>(
  context: CliContext,
  options: { config?: string | undefined; home?: string | undefined },
  fn: (client: AmalgamClient, server: string[]) => Promise<T>,
): Promise<T> {
  const loaded = await loadAdminConfig(resolveAdminConfigPath(options, context));
  const client = createClient({
    endpoints: loaded.config.server,
    ca: loaded.ca,
    cert: loaded.cert,
    key: loaded.key,
  });
  try {
    return await fn(client, loaded.config.server);
  } finally {
    await client.close();
  }
}

export function processContext(): CliContext {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    userHome: homedir(),
    cwd: process.cwd(),
    now: Date.now,
    hostname,
  };
}
