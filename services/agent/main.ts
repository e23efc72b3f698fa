/**
 * clusteragent: the per-node process (`clusteragent --config <home>/agent.json`).
 * SIGTERM or SIGINT stops it gracefully: the page server is stopped first.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { closeOnSignals, parseDaemonArgs } from '../daemon/daemon.ts';
import { startAgent } from './agent.ts';
import { type AgentConfig, loadAgentConfig } from './config.ts';

const USAGE = `usage: clusteragent --config <home>/agent.json [--metrics-port N] [--log-level LEVEL]

  -c, --config FILE     the agent config \`clusteradm join\` wrote (server, name, certFile,
                        keyFile, caFile; optional heartbeatSeconds, pageserver, metricsPort,
                        devices, remotedev {mount, localdev}, stateDir)
      --metrics-port N  serve /metrics on 127.0.0.1:N (default: the config's, else a free port)
      --log-level LEVEL pino level (default info)
  -h, --help            this text

Heartbeats with this node's load, runs the page server on the node's committed range,
publishes this machine's devices, and (with remotedev.mount) mounts /remotedev.
SIGTERM or SIGINT stops it (and the page server) cleanly.
`;

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const values = parseDaemonArgs('clusteragent', USAGE, argv, {
    'metrics-port': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (!values) return;
  let config: AgentConfig;
  try {
    config = await loadAgentConfig(values.config);
    const port = values['metrics-port'] as string | undefined;
    if (port !== undefined) {
      const n = Number(port);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error('--metrics-port: 0..65535');
      config.metricsPort = n;
    }
  } catch (err) {
    process.stderr.write(`clusteragent: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  const logger = pino({ level: (values['log-level'] as string | undefined) ?? 'info' });
  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent({ config, logger });
  } catch (err) {
    logger.fatal({ err }, 'clusteragent did not start');
    process.exitCode = 1;
    return;
  }
  closeOnSignals(logger, () => agent.close());
}

const invokedDirectly =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) await main();
