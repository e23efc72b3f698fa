/**
 * `clusteradm init`: makes a new cluster on this machine. Writes the CA, the
 * admin credential and clusterd's certificate and configuration into the
 * admin home, starts clusterd, waits until it is ready and prints the command
 * other machines run to join (with a fresh token and the CA pin), as kubeadm.
 * Progress goes to stderr; the result to stdout.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { InvalidArgumentError, Option } from 'commander';
import type { CreatedToken } from '../api/contracts.ts';
import { type AmalgamClient, createClient } from '../client/index.ts';
import { isValidNodeName } from '../core/names.ts';
import {
  type ClusterHome,
  type CreatedHome,
  clearHome,
  clusterHome,
  createClusterHome,
  existingEntries,
  type InitSpec,
  urlHost,
} from './cluster-home.ts';
import { startClusterd, waitUntilReady } from './clusterd-process.ts';
import { resolveHome } from './config.ts';
import { type CliContext, defineCommand } from './context.ts';
import { runningPid } from './daemon-process.ts';
import { CliError, usageError } from './errors.ts';
import { etcdPaths } from './etcd-files.ts';
import { spawnEtcd, waitForEtcd } from './etcd-member.ts';
import { joinCommand } from './join-command.ts';
import { type OutputFormat, outputOption, toJson } from './output.ts';
import { parseDuration } from './units.ts';

interface Options {
  home?: string;
  name: string;
  listen: { host: string; port: number };
  advertiseAddress?: string;
  store: 'embedded' | 'etcd';
  etcdEndpoints?: string[];
  etcdName?: string;
  start: boolean;
  force?: boolean;
  waitTimeout: number;
  output: OutputFormat;
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces). */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError('HOST:PORT is required (e.g. 127.0.0.1:6443, 0.0.0.0:6443)');
  }
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function parseIp(text: string): string {
  if (isIP(text) === 0) throw new InvalidArgumentError('an IP address is required');
  return text;
}

function parseClusterName(text: string): string {
  if (!isValidNodeName(text)) {
    throw new InvalidArgumentError('a DNS label is required (a-z, 0-9, -; at most 63)');
  }
  return text;
}

function parseEndpoints(text: string): string[] {
  const urls = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const url of urls) {
    if (!/^https:\/\/[^/]+/.test(url)) {
      throw new InvalidArgumentError(
        `not an https:// etcd client URL: ${JSON.stringify(url)} (etcd serves clients over TLS only)`,
      );
    }
  }
  if (urls.length === 0) throw new InvalidArgumentError('at least one URL is required');
  return urls;
}

/** What other machines should use: the listen host when it is specific, else this machine's first external IPv4. */
export function defaultAdvertiseAddress(
  listenHost: string,
  interfaces: ReturnType<typeof networkInterfaces>,
): string {
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  for (const list of Object.values(interfaces)) {
    for (const address of list ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  return '127.0.0.1';
}

/** `--store` and `--etcd-endpoints` go together. */
function checkStoreOptions(options: Pick<Options, 'store' | 'etcdEndpoints'>): void {
  if (options.store === 'etcd' && options.etcdEndpoints === undefined) {
    throw usageError('--store etcd needs --etcd-endpoints');
  }
  if (options.store === 'embedded' && options.etcdEndpoints !== undefined) {
    throw usageError('--etcd-endpoints is only for --store etcd');
  }
}

/** An empty home, or (--force) one whose previous cluster is stopped and then removed. */
async function makeRoom(
  layout: ClusterHome,
  force: boolean,
  progress: (line: string) => void,
): Promise<void> {
  const existing = await existingEntries(layout);
  if (existing.length === 0) return;
  if (!force) {
    throw new CliError(
      'HOME_EXISTS',
      `${layout.home} (found ${existing.join(', ')}); use --force to replace it, or another --home`,
      { home: layout.home },
    );
  }
  const pid = await runningPid(layout.pid);
  if (pid !== undefined) {
    throw new CliError('CLUSTERD_RUNNING', `pid ${pid} from ${layout.home}; stop it first`, {
      pid,
    });
  }
  progress(`--force: removing the previous cluster from ${layout.home}`);
  await clearHome(layout);
}

/** What the cluster home is made from: the options, this machine's name and addresses. */
export function initSpec(
  options: Pick<
    Options,
    'name' | 'listen' | 'advertiseAddress' | 'store' | 'etcdEndpoints' | 'etcdName'
  >,
  hostname: string,
  interfaces: ReturnType<typeof networkInterfaces>,
): InitSpec {
  const label = hostname.toLowerCase().split('.')[0] ?? '';
  return {
    clusterName: options.name,
    listen: options.listen,
    advertiseAddress:
      options.advertiseAddress ?? defaultAdvertiseAddress(options.listen.host, interfaces),
    store:
      options.store === 'etcd'
        ? {
            backend: 'etcd',
            endpoints: options.etcdEndpoints as string[],
            memberName: options.etcdName ?? (isValidNodeName(label) ? label : 'etcd0'),
          }
        : { backend: 'embedded' },
    hostname,
  };
}

/** The first etcd member, from the `<home>/etcd.env` init wrote; waits until it is healthy. */
async function startFirstEtcd(
  layout: ClusterHome,
  spec: InitSpec,
  options: Options,
  progress: (line: string) => void,
): Promise<void> {
  const paths = etcdPaths(layout.home);
  const pid = await spawnEtcd(layout.home, paths.env);
  progress(`started etcd (pid ${pid}) from ${paths.env}; waiting for it to be healthy`);
  const [ca, cert, key] = await Promise.all(
    [paths.caCert, paths.clientCert, paths.clientKey].map((f) => readFile(f, 'utf8')),
  );
  const pem = { ca: ca as string, cert: cert as string, key: key as string };
  const name = spec.store.backend === 'etcd' ? spec.store.memberName : 'etcd';
  await waitForEtcd(spec.advertiseAddress, name, layout.home, options.waitTimeout * 1000, pem);
}

/** A client with the admin credential just written. */
async function adminClient(layout: ClusterHome, created: CreatedHome): Promise<AmalgamClient> {
  const [ca, cert, key] = await Promise.all(
    [layout.caCert, layout.adminCert, layout.adminKey].map((f) => readFile(f, 'utf8')),
  );
  return createClient({
    endpoints: created.adminConfig.server,
    ca: ca as string,
    cert: cert as string,
    key: key as string,
  });
}

interface Configured {
  spec: InitSpec;
  layout: ClusterHome;
  created: CreatedHome;
}

function printConfigured(context: CliContext, output: OutputFormat, c: Configured): void {
  const { spec, layout, created } = c;
  if (output === 'json') {
    context.stdout(
      toJson({
        clusterName: spec.clusterName,
        home: layout.home,
        server: created.server,
        caCertHash: created.caCertHash,
        clusterdConfig: layout.clusterdConfig,
        adminConfig: layout.adminConfig,
      }),
    );
    return;
  }
  context.stdout(
    [
      `Cluster "${spec.clusterName}" is configured in ${layout.home} (CA ${created.caCertHash}).`,
      `Start clusterd with:  clusterd --config ${layout.clusterdConfig}`,
      `then print a join command with:  clusteradm token create --print-join-command --home ${layout.home}`,
      '',
    ].join('\n'),
  );
}

function printRunning(
  context: CliContext,
  output: OutputFormat,
  c: Configured,
  pid: number,
  token: CreatedToken,
): void {
  const { spec, layout, created } = c;
  const command = joinCommand(created.server, token.token, created.caCertHash);
  if (output === 'json') {
    context.stdout(
      toJson({
        clusterName: spec.clusterName,
        home: layout.home,
        server: created.server,
        caCertHash: created.caCertHash,
        pid,
        token: token.token,
        tokenExpiresAt: token.expiresAt,
        joinCommand: command,
      }),
    );
    return;
  }
  context.stdout(
    [
      `Cluster "${spec.clusterName}" is running (clusterd pid ${pid}).`,
      '',
      `Admin configuration: ${layout.adminConfig}`,
      '',
      'To join a machine, run on it (the token expires in 24h):',
      '',
      `  ${command}`,
      '',
    ].join('\n'),
  );
}

export const init = defineCommand<Options>({
  words: ['init'],
  summary: 'create a cluster on this machine and start clusterd',
  configure(command) {
    command
      .option('--home <dir>', 'admin home to create (default: $AMALGAM_HOME or ~/.amalgam)')
      .option('--name <cluster>', 'cluster name', parseClusterName, 'amalgam')
      .addOption(
        new Option('--listen <host:port>', 'where clusterd listens')
          .argParser(parseListen)
          .default({ host: '127.0.0.1', port: 6443 }, '127.0.0.1:6443'),
      )
      .option(
        '--advertise-address <ip>',
        'the IP other machines reach clusterd at (default: the listen host, or the first external IPv4)',
        parseIp,
      )
      .addOption(
        new Option('--store <backend>', 'where the cluster state lives')
          .choices(['embedded', 'etcd'])
          .default('embedded'),
      )
      .option(
        '--etcd-endpoints <urls>',
        'comma-separated https:// etcd client URLs (with --store etcd)',
        parseEndpoints,
      )
      .option(
        '--etcd-name <name>',
        "with --store etcd: this machine's etcd member name (default: the host name)",
        parseClusterName,
      )
      .option('--no-start', 'write the files but do not start clusterd')
      .option('--force', 'replace a cluster this home already holds (its data is deleted)')
      .addOption(
        new Option('--wait-timeout <duration>', 'how long to wait for clusterd to be ready')
          .argParser(parseDuration)
          .default(60, '60s'),
      )
      .addOption(outputOption());
  },
  async run(context, { options }) {
    const progress = (line: string): void => context.stderr(`[init] ${line}\n`);
    checkStoreOptions(options);
    const layout = clusterHome(resolveHome(options.home, context));
    await makeRoom(layout, options.force === true, progress);
    const spec = initSpec(options, context.hostname(), networkInterfaces());
    progress(`writing the cluster CA and credentials to ${layout.pki}`);
    const created = await createClusterHome(layout, spec);
    progress(`wrote ${layout.clusterdConfig} and ${layout.adminConfig}`);
    const configured: Configured = { spec, layout, created };
    if (!options.start) {
      progress('not starting clusterd (--no-start)');
      printConfigured(context, options.output, configured);
      return;
    }
    if (spec.store.backend === 'etcd') await startFirstEtcd(layout, spec, options, progress);
    progress(
      `starting clusterd on ${urlHost(spec.listen.host)}:${spec.listen.port}, log ${layout.log}`,
    );
    const started = await startClusterd(layout);
    const client = await adminClient(layout, created);
    try {
      await waitUntilReady(client, started, options.waitTimeout * 1000);
      progress(`clusterd is ready (pid ${started.pid})`);
      const token = await client.tokens.create({ description: 'created by clusteradm init' });
      printRunning(context, options.output, configured, started.pid, token);
    } finally {
      await client.close();
    }
  },
});
