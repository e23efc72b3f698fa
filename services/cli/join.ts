/**
 * `clusteradm join URL --token T --ca-cert-hash sha256:H`, run on the machine
 * that joins.
 *
 * Order matters for security: the server's CA is read from a TLS handshake
 * that sends nothing and pinned by hash BEFORE the token or anything else is
 * sent; the token then goes only over a connection verified against that CA.
 * The node key is made (or reused) and saved before the join is sent, so a
 * join whose answer was lost can be repeated as the same identity.
 */

import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join as joinPath } from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import type { JoinRequest, JoinResult, NodeView } from '../api/contracts.ts';
import { ClientError, createClient } from '../client/index.ts';
import { parseBootstrapToken } from '../core/bootstrap-token.ts';
import { isLoopbackHost } from '../core/endpoints.ts';
import { isValidNodeName } from '../core/names.ts';
import { verifyCaCertHash } from '../pki/index.ts';
import {
  agentLog,
  runAgentForeground,
  startAgentDaemon,
  stopRunningAgent,
  waitForAgent,
} from './agent-process.ts';
import { readCapacity } from './capacity.ts';
import { resolveHome, resolveNodeHome } from './config.ts';
import { type CliContext, defineCommand } from './context.ts';
import { CliError, usageError } from './errors.ts';
import { ensureDir, PRIVATE, PUBLIC, writeFileAtomic, writeJson } from './files.ts';
import {
  type ControlPlaneFlags,
  controlPlaneOptions,
  controlPlaneSettings,
  joinControlPlane,
} from './join-control-plane.ts';
import { certificateMatchesKey, nodeKeyAndCsr } from './node-key.ts';
import { type OutputFormat, outputOption, renderFields, toJson } from './output.ts';
import { pinServerCa } from './pin-ca.ts';
import { formatBytes, formatRange, parseSize } from './units.ts';

interface Options extends ControlPlaneFlags {
  token?: string;
  caCertHash: string;
  name?: string;
  home?: string;
  contribute: number | 'auto';
  agent: boolean;
  foreground?: boolean;
  metricsPort?: number;
  waitTimeout: number;
  output: OutputFormat;
}

/** What `join` writes for the agent, next to the files it names. */
export interface AgentConfig {
  server: string[];
  name: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  metricsPort?: number;
}

const PIN = /^sha256:[0-9a-fA-F]{64}$/;

function parseServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(`not a URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'https:') throw new InvalidArgumentError('an https:// URL is required');
  return url.origin;
}

function parseToken(text: string): string {
  try {
    parseBootstrapToken(text);
  } catch {
    throw new InvalidArgumentError('a bootstrap token [a-z0-9]{6}.[a-z0-9]{16} is required');
  }
  return text;
}

function parsePin(text: string): string {
  if (!PIN.test(text)) throw new InvalidArgumentError('sha256:<64 hex digits> is required');
  return text.toLowerCase();
}

function parseNodeName(text: string): string {
  if (!isValidNodeName(text)) {
    throw new InvalidArgumentError('a DNS label is required (a-z, 0-9, -; at most 63)');
  }
  return text;
}

function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535)
    throw new InvalidArgumentError('a port 0..65535 is required');
  return n;
}

function parseSeconds(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1)
    throw new InvalidArgumentError('whole seconds >= 1 are required');
  return n;
}

function parseContribution(text: string): number | 'auto' {
  return text === 'auto' ? 'auto' : parseSize(text);
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** `--name`, or this host's name up to the first dot. */
function nodeNameOf(given: string | undefined, hostname: string): string {
  const name = given ?? hostname.toLowerCase().split('.')[0] ?? '';
  if (!isValidNodeName(name)) {
    throw new CliError(
      'CONFIG_INVALID',
      `the host name ${JSON.stringify(name)} is not a valid node name; pass --name`,
    );
  }
  return name;
}

/** The node key of this home (the same identity on a re-run), or a new one saved before the join is sent. */
async function nodeKey(home: string, name: string, progress: (line: string) => void) {
  await ensureDir(home);
  const keyFile = joinPath(home, 'node.key');
  const existing = await readIfExists(keyFile);
  const { keyPem, csrPem, created } = await nodeKeyAndCsr(name, existing);
  if (created) await writeFileAtomic(keyFile, keyPem, PRIVATE);
  progress(created ? `made a new key ${keyFile}` : `reusing the key ${keyFile}`);
  return { keyFile, keyPem, csrPem };
}

/** POST /v1/join with the token; the answer must certify our key and carry the pinned CA. */
async function sendJoin(
  server: string,
  ca: string,
  request: JoinRequest,
  keyPem: string,
  caCertHash: string,
): Promise<JoinResult> {
  const client = createClient({ endpoints: [server], ca });
  let result: JoinResult;
  try {
    result = await client.nodes.join(request);
  } finally {
    await client.close();
  }
  if (!certificateMatchesKey(result.certificate, keyPem)) {
    throw new ClientError('BAD_RESPONSE', 'the node certificate is not for the key that was sent');
  }
  if (!verifyCaCertHash(result.caCertificate, caCertHash)) {
    throw new CliError('CA_HASH_MISMATCH', 'the join answered with a different CA', { server });
  }
  return result;
}

/** node.crt, ca.crt and agent.json in the node home; the path of agent.json. */
async function writeAgentFiles(
  home: string,
  server: string,
  ca: string,
  result: JoinResult,
  keyFile: string,
  options: Pick<Options, 'metricsPort'> & { pageServerHost: string | undefined },
): Promise<string> {
  const files: AgentConfig = {
    server: [server],
    name: result.node.name,
    certFile: joinPath(home, 'node.crt'),
    keyFile,
    caFile: joinPath(home, 'ca.crt'),
    ...(options.metricsPort === undefined ? {} : { metricsPort: options.metricsPort }),
    ...(options.pageServerHost === undefined
      ? {}
      : { pageserver: { listenHost: options.pageServerHost } }),
  };
  await writeFileAtomic(files.certFile, result.certificate, PUBLIC);
  await writeFileAtomic(files.caFile, ca, PUBLIC);
  const agentFile = joinPath(home, 'agent.json');
  await writeJson(agentFile, files);
  return agentFile;
}

/**
 * Stops an agent running from this home, then (unless --no-agent or
 * --foreground) starts one in the background and waits until the node is Ready.
 */
async function startAgentFor(
  home: string,
  agentFile: string,
  server: string,
  ca: string,
  result: JoinResult,
  keyPem: string,
  options: Pick<Options, 'agent' | 'foreground' | 'waitTimeout'>,
  progress: (line: string) => void,
): Promise<{ node: NodeView; agentPid: number | undefined }> {
  const replaced = options.agent ? await stopRunningAgent(home) : undefined;
  if (replaced !== undefined) progress(`stopped the agent that ran from ${home} (pid ${replaced})`);
  if (!options.agent || options.foreground) return { node: result.node, agentPid: undefined };
  const started = await startAgentDaemon({ home, config: agentFile });
  progress(`started clusteragent (pid ${started.pid}, log ${started.log}); waiting for Ready`);
  const member = createClient({ endpoints: [server], ca, cert: result.certificate, key: keyPem });
  try {
    const node = await waitForAgent(member, result.node.name, started, options.waitTimeout * 1000);
    return { node, agentPid: started.pid };
  } finally {
    await member.close();
  }
}

function printJoined(
  context: CliContext,
  output: OutputFormat,
  joined: {
    home: string;
    agentFile: string;
    result: JoinResult;
    node: NodeView;
    agentPid: number | undefined;
  },
): void {
  const { home, agentFile, result, node, agentPid } = joined;
  if (output === 'json') {
    context.stdout(
      toJson({
        node,
        rejoined: result.rejoined,
        agentConfig: agentFile,
        agent: agentPid === undefined ? null : { pid: agentPid, log: agentLog(home) },
      }),
    );
    return;
  }
  context.stdout(
    renderFields([
      [
        'Joined',
        `${node.name} (${result.rejoined ? 'rejoined with its previous range' : 'new node'})`,
      ],
      ['State', node.state],
      ['Range', `${formatRange(node.range)} (${formatBytes(node.range.size)})`],
      ['Agent config', agentFile],
      ...(agentPid === undefined
        ? []
        : ([
            ['Agent', `pid ${agentPid}, log ${agentLog(home)}`],
            ['Page server', node.pageserver?.address ?? '-'],
          ] as [string, string][])),
    ]),
  );
}

export const join = defineCommand<Options, [string]>({
  words: ['join'],
  summary: 'join this machine to a cluster (pins the CA before sending the token)',
  configure(command) {
    command
      .argument('<url>', 'https://host:port of clusterd', parseServerUrl)
      .option(
        '--token <token>',
        'bootstrap token from `clusteradm token create` (required, except with --control-plane)',
        parseToken,
      )
      .requiredOption(
        '--ca-cert-hash <sha256:hex>',
        "the cluster CA's public key hash, as `clusteradm init` printed it",
        parsePin,
      )
      .option('--name <name>', 'node name (default: this host name)', parseNodeName)
      .option('--home <dir>', 'where the node credentials go (default: ~/.amalgam-node)')
      .addOption(
        new Option('--contribute <bytes|auto>', 'bytes served to the network memory space')
          .argParser(parseContribution)
          .default('auto', 'auto: RAM + swap'),
      )
      .option('--no-agent', 'do not start clusteragent (print how to start it)')
      .addOption(
        new Option(
          '--foreground',
          'run clusteragent on this terminal until Ctrl-C (default: in the background, logging to <home>/agent.log)',
        ).conflicts('agent'),
      )
      .option(
        '--metrics-port <port>',
        "the agent's /metrics port on 127.0.0.1 (default: a free one)",
        parsePort,
      )
      .addOption(
        new Option('--wait-timeout <seconds>', 'how long to wait for the node to turn Ready')
          .argParser(parseSeconds)
          .default(60),
      )
      .addOption(outputOption());
    controlPlaneOptions(command);
  },
  async run(context, { args: [server], options }) {
    const name = nodeNameOf(options.name, context.hostname());
    if (options.controlPlane) {
      await joinControlPlane(context, server, options.caCertHash, {
        ...controlPlaneSettings(options),
        name,
        home: resolveHome(options.home, context),
        waitTimeoutSeconds: options.waitTimeout,
        output: options.output,
      });
      return;
    }
    if (options.token === undefined)
      throw usageError("required option '--token <token>' not specified");
    const progress = (line: string): void => context.stderr(`[join] ${line}\n`);
    const home = resolveNodeHome(options.home, context);
    // 1. Pin the CA. Nothing but a TLS handshake has happened when this throws.
    const ca = await pinServerCa(server, options.caCertHash, progress);
    progress(`the CA matches ${options.caCertHash}`);
    // 2. The node key: reused when this home has one (same identity), else made and saved now.
    const key = await nodeKey(home, name, progress);
    // 3. Join over a connection verified against the pinned CA.
    const capacity = await readCapacity(options.contribute);
    const request = { token: options.token, name, csr: key.csrPem, capacity };
    const result = await sendJoin(server, ca, request, key.keyPem, options.caCertHash);
    // 4. The agent's credentials and configuration.
    const pageServerHost = options.advertiseAddress ?? (await localAddressTowards(server));
    if (pageServerHost !== undefined) progress(`the page server will listen on ${pageServerHost}`);
    const agentFile = await writeAgentFiles(home, server, ca, result, key.keyFile, {
      ...options,
      pageServerHost,
    });
    // 5. The agent: replaced when one runs from this home (the credentials may be new).
    const agent = await startAgentFor(
      home,
      agentFile,
      server,
      ca,
      result,
      key.keyPem,
      options,
      progress,
    );
    printJoined(context, options.output, { home, agentFile, result, ...agent });
    if (!options.agent) {
      progress(
        `not starting the agent (--no-agent); start it with: clusteragent --config ${agentFile}`,
      );
    }
    if (options.foreground) {
      progress('running clusteragent in the foreground (Ctrl-C stops it)');
      const code = await runAgentForeground({ home, config: agentFile });
      if (code !== 0) throw new CliError('AGENT_START_FAILED', `clusteragent exited with ${code}`);
    }
  },
});

/**
 * The address other machines reach this one at, for its page server: the
 * local end of a connection to clusterd (the interface the route to the
 * control plane uses). Undefined when clusterd is on this machine's loopback
 * (a one-machine cluster: the page server stays on 127.0.0.1) or unreachable
 * (join fails on its own then). A page server on loopback or a wildcard is
 * refused in heartbeats unless the cluster is single-machine.
 */
export function localAddressTowards(serverUrl: string): Promise<string | undefined> {
  const url = new URL(serverUrl);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(url.port || 443), timeout: 5000 });
    const done = (address: string | undefined) => {
      socket.destroy();
      resolve(address === undefined || isLoopbackHost(address) ? undefined : address);
    };
    socket.once('connect', () => done(socket.localAddress?.replace(/^::ffff:/, '')));
    socket.once('timeout', () => done(undefined));
    socket.once('error', () => done(undefined));
  });
}
