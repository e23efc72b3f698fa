/**
 * clusteradm's own failures (before or around API calls), and how every
 * failure becomes one line on stderr and an exit code:
 *   0 done, 1 the operation failed (API, network, local files), 2 usage.
 * The line always names the code: `error: NAME_TAKEN: the name is already taken...`.
 */
import { CommanderError } from 'commander';

export const CLI_ERRORS = {
  CONFIG_NOT_FOUND: 'no admin configuration was found',
  CONFIG_INVALID: 'the admin configuration is not valid',
  HOME_EXISTS: 'the home directory already holds a cluster',
  CLUSTERD_RUNNING: 'clusterd is running from this home',
  CLUSTERD_START_FAILED: 'clusterd did not become ready',
  CA_HASH_MISMATCH: "the server's CA does not match --ca-cert-hash; nothing was sent to it",
  NODE_KEY_INVALID: 'the existing node key cannot be used',
  AGENT_START_FAILED: 'clusteragent did not bring the node to Ready',
  ETCD_MEMBER_ADD_FAILED:
    'etcd did not take this machine as a new member, or it did not become healthy',
} as const;

export type CliErrorCode = keyof typeof CLI_ERRORS;

export class CliError extends Error {
  readonly code: CliErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: CliErrorCode, detail?: string, details: Record<string, unknown> = {}) {
    super(detail ? `${CLI_ERRORS[code]}: ${detail}` : CLI_ERRORS[code]);
    this.name = 'CliError';
    this.code = code;
    this.details = details;
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

const USAGE = 'amalgam.usage';

/** A usage error found after parsing (options that do not go together): exit 2. */
export function usageError(message: string): CommanderError {
  return new CommanderError(EXIT_USAGE, USAGE, message);
}

/** Commander's codes for "the user asked for help or the version": not failures. */
const INFORMATIONAL = new Set(['commander.helpDisplayed', 'commander.version']);

/**
 * The exit code for `err`, after writing its one-line description (commander
 * has already written its own usage messages).
 */
export function reportError(err: unknown, writeErr: (text: string) => void): number {
  if (err instanceof CommanderError) {
    if (INFORMATIONAL.has(err.code)) return EXIT_OK;
    if (err.code === USAGE) writeErr(`error: ${err.message}\n(add --help for usage)\n`);
    // `clusteradm token` without a verb prints help to stderr: a usage error.
    return err.code === 'commander.help' && err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  writeErr(`error: ${describeError(err)}\n`);
  return EXIT_FAILED;
}

/** `CODE: message (request <id>)`, on one line. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const { code, requestId } = err as { code?: unknown; requestId?: unknown };
  const message = err.message.replace(/\s*\n\s*/g, ' ');
  const prefix =
    typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code) && !message.startsWith(code)
      ? `${code}: `
      : '';
  const suffix = typeof requestId === 'string' ? ` (request ${requestId})` : '';
  return `${prefix}${message}${suffix}`;
}
