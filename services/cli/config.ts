/**
 * Where clusteradm finds things.
 *
 * The admin configuration (like a kubeconfig) is JSON
 * `{ "server": ["https://host:port", ...], "caFile", "certFile", "keyFile" }`;
 * relative file names are relative to the configuration's own directory.
 * It is the first of: `--config FILE`, `$AMALGAM_CONFIG`, `<home>/admin.json`,
 * where home is `--home DIR`, `$AMALGAM_HOME` or `~/.amalgam`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { compileConfigSchema } from '../api/config-check.ts';
import { ADMIN_CONFIG_SCHEMA } from './config-schema.ts';
import { CliError } from './errors.ts';

export interface AdminConfig {
  /** Every clusterd replica, tried in order. */
  server: string[];
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface LoadedAdminConfig {
  path: string;
  config: AdminConfig;
  ca: string;
  cert: string;
  key: string;
}

export interface Environment {
  env: Record<string, string | undefined>;
  /** The user's home directory (`~`). */
  userHome: string;
  cwd: string;
}

export const ADMIN_CONFIG_FILE = 'admin.json';

/** The admin home: `--home`, `$AMALGAM_HOME`, `~/.amalgam`. */
export function resolveHome(option: string | undefined, environment: Environment): string {
  const chosen = option ?? nonEmpty(environment.env.AMALGAM_HOME);
  return chosen === undefined
    ? join(environment.userHome, '.amalgam')
    : resolve(environment.cwd, chosen);
}

/** The node home that `join` writes: `--home` or `~/.amalgam-node`. */
export function resolveNodeHome(option: string | undefined, environment: Environment): string {
  return option === undefined
    ? join(environment.userHome, '.amalgam-node')
    : resolve(environment.cwd, option);
}

export interface ConfigLocation {
  path: string;
  source: '--config' | '$AMALGAM_CONFIG' | 'home';
}

export function resolveAdminConfigPath(
  options: { config?: string | undefined; home?: string | undefined },
  environment: Environment,
): ConfigLocation {
  if (options.config !== undefined) {
    return { path: resolve(environment.cwd, options.config), source: '--config' };
  }
  const fromEnv = nonEmpty(environment.env.AMALGAM_CONFIG);
  if (fromEnv !== undefined) {
    return { path: resolve(environment.cwd, fromEnv), source: '$AMALGAM_CONFIG' };
  }
  return { path: join(resolveHome(options.home, environment), ADMIN_CONFIG_FILE), source: 'home' };
}

/** Reads the configuration and the three PEM files it names. */
export async function loadAdminConfig(location: ConfigLocation): Promise<LoadedAdminConfig> {
  let text: string;
  try {
    text = await readFile(location.path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError(
        'CONFIG_NOT_FOUND',
        `${location.path} (from ${location.source}) does not exist; run \`clusteradm init\`, or pass --config or --home`,
        { path: location.path },
      );
    }
    throw err;
  }
  const config = parseAdminConfig(text, location.path);
  const base = dirname(location.path);
  const read = async (field: 'caFile' | 'certFile' | 'keyFile'): Promise<string> => {
    const file = resolve(base, config[field]);
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError(
        'CONFIG_INVALID',
        `${location.path}: ${field} ${file}: ${(err as Error).message}`,
        { path: location.path, field },
      );
    }
  };
  const [ca, cert, key] = await Promise.all([read('caFile'), read('certFile'), read('keyFile')]);
  return { path: location.path, config, ca, cert, key };
}

const checkAdminSchema = compileConfigSchema(ADMIN_CONFIG_SCHEMA);

/**
 * Checks the JSON against its schema (config-schema.ts); `server` may also be
 * a single string. CONFIG_INVALID names the file (`details.path`) and the
 * field (`details.field`, `config` for the file as a whole).
 */
export function parseAdminConfig(text: string, path: string): AdminConfig {
  const invalid = (field: string, message: string): CliError =>
    new CliError('CONFIG_INVALID', `${path}: ${field === 'config' ? '' : `${field}: `}${message}`, {
      path,
      field,
    });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalid('config', `not JSON (${(err as Error).message})`);
  }
  const issue = checkAdminSchema(raw);
  if (issue) throw invalid(issue.field, issue.message);
  const { server, caFile, certFile, keyFile } = raw as Omit<AdminConfig, 'server'> & {
    server: string | string[];
  };
  return { server: typeof server === 'string' ? [server] : [...server], caFile, certFile, keyFile };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
