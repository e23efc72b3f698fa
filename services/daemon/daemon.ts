/**
 * What every amalgam daemon's entry point shares (clusterd, clusteragent):
 * `--config FILE` / `--help` argument parsing with usage errors exiting 2, and
 * a graceful shutdown on SIGTERM/SIGINT that cannot hang forever.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { Logger } from 'pino';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses `--config` (required), `--help` and `extra` options. Returns the
 * values, or undefined after printing help or a usage error (exit code 2).
 */
export function parseDaemonArgs(
  name: string,
  usage: string,
  argv: string[],
  extra: Options = {},
): (Record<string, string | boolean | undefined> & { config: string }) | undefined {
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        ...extra,
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n\n${usage}`);
    process.exitCode = 2;
    return undefined;
  }
  if (values.help) {
    process.stdout.write(usage);
    return undefined;
  }
  if (typeof values.config !== 'string' || values.config === '') {
    process.stderr.write(`${name}: --config is required\n\n${usage}`);
    process.exitCode = 2;
    return undefined;
  }
  return values as Record<string, string | boolean | undefined> & { config: string };
}

/** On SIGTERM/SIGINT: close, then exit 0; exit 1 when close fails or takes longer than `graceMs`. */
export function closeOnSignals(logger: Logger, close: () => Promise<void>, graceMs = 15_000): void {
  const stop = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'shutting down');
    // A close that hangs (a store that never answers) must not keep the process forever.
    setTimeout(() => {
      logger.error(`close did not finish within ${graceMs / 1000} s; exiting`);
      process.exit(1);
    }, graceMs).unref();
    close().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'close failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
