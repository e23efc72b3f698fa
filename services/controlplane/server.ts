/**
 * clusterd: the process. Owns the logger, the store, the control-plane
 * runtime and the HTTPS listener, and closes them in reverse order on
 * SIGTERM/SIGINT. Everything it serves is built by rest/app.ts.
 *
 *   node --import ./scripts/ts-loader.mjs services/controlplane/server.ts --config clusterd.json
 *
 * Tests and `clusteradm` start it in-process with `startClusterd(config)`.
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Logger, pino } from 'pino';
import { Registry } from 'prom-client';
import { ERRORS, isAmalgamError } from '../core/errors.ts';
import { closeOnSignals, parseDaemonArgs } from '../daemon/daemon.ts';
import { openEmbeddedStore } from '../store/embedded-store.ts';
import { EtcdStore } from '../store/etcd-store.ts';
import { loadEtcdCredentials } from '../store/etcd-tls.ts';
import type { Store } from '../store/store.ts';
import { type ClusterdConfig, loadConfig } from './config.ts';
import { createControlPlane } from './control-plane.ts';
import { startGrpcServer } from './grpc/server.ts';
import { type LimitsConfig, limitsFrom, quotasFrom } from './limits.ts';
import { instrumentStore } from './metrics.ts';
import { buildApp } from './rest/app.ts';
import type { ControlPlaneRuntime } from './service/contracts.ts';

export const USAGE = `Usage: clusterd --config <file>

Runs the amalgam control plane: the REST API over HTTPS (mutual TLS), /metrics,
/healthz, /readyz, /openapi.json and /docs.

Options:
  -c, --config <file>  JSON configuration (see services/controlplane/config.ts):
                       { "clusterName", "listen": {"host","port"},
                         "tls": {"certFile","keyFile","caFile","caKeyFile"},
                         "store": {"backend":"embedded","dataDir"} |
                                  {"backend":"etcd","endpoints":["https://..."],
                                   "tls":{"ca","cert","key"}},
                         "logLevel"?, "grpcListen"?: {"host","port"},
                         "join"?: {"ratePerSecond","burst","maxSources",
                                   "maxContributedBytes"},
                         "limits"?: {...}, "quotas"?: {...} (limits.ts) }
  -h, --help           Show this help.

Logs are JSON lines on stdout; one of them, msg "clusterd listening", carries
the URL. SIGTERM or SIGINT closes the listener, the controllers and the store.
`;

export interface RunningClusterd {
  /** https://host:port actually listened on (port 0 in the config picks a free one). */
  url: string;
  /** host:port of the gRPC listener, when the config has `grpcListen`. */
  grpcAddress?: string;
  /** Stops accepting, finishes in-flight requests, stops the runtime, closes the store. Idempotent. */
  close(): Promise<void>;
}

async function openStore(config: ClusterdConfig, logger: Logger): Promise<Store> {
  if (config.store.backend === 'embedded') {
    return openEmbeddedStore({
      dataDir: config.store.dataDir,
      logger: logger.child({ component: 'store' }),
    });
  }
  const { endpoints, tls } = config.store;
  // A wrong certificate is a config error here, before any connection (etcd-tls.ts).
  const credentials = tls ? await loadEtcdCredentials(tls) : undefined;
  if (!credentials) {
    logger.warn(
      { endpoints },
      'etcd over plain http without a client certificate: whoever reaches etcd bypasses clusterd',
    );
  }
  return new EtcdStore({ endpoints, ...(credentials ? { credentials } : {}) });
}

function urlOf(host: string, port: number): string {
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The config's `limits` over the defaults; the older top-level `bodyLimit` still counts. */
function limitsOf(config: ClusterdConfig): LimitsConfig {
  const bodyLimit = config.bodyLimit === undefined ? {} : { bodyLimit: config.bodyLimit };
  return limitsFrom({ ...bodyLimit, ...config.limits });
}

/** The gRPC door on `listen`, closed with the rest; its `host:port`. */
async function listenGrpc(
  listen: { host: string; port: number },
  runtime: ControlPlaneRuntime,
  logger: Logger,
  tls: { cert: string; key: string; ca: string },
  limits: LimitsConfig,
  cleanups: (() => Promise<void>)[],
): Promise<string> {
  const grpcServer = await startGrpcServer({
    runtime,
    logger: logger.child({ component: 'grpc' }),
    tls,
    host: listen.host,
    port: listen.port,
    limits,
  });
  cleanups.push(() => grpcServer.close());
  const address = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${grpcServer.port}`;
  logger.info({ url: `grpcs://${address}` }, 'clusterd gRPC listening');
  return address;
}

/** The control plane's settings from the config that have defaults of their own. */
function tunables(config: ClusterdConfig) {
  return {
    ...(config.nodeGraceSeconds !== undefined ? { nodeGraceSeconds: config.nodeGraceSeconds } : {}),
    ...(config.processes !== undefined ? { processes: config.processes } : {}),
    ...(config.join !== undefined ? { join: config.join } : {}),
    singleMachine: config.singleMachine === true,
  };
}

export async function startClusterd(
  config: ClusterdConfig,
  logger: Logger = pino({ level: config.logLevel ?? 'info' }),
): Promise<RunningClusterd> {
  const [cert, key, caCert, caKey] = await Promise.all(
    [config.tls.certFile, config.tls.keyFile, config.tls.caFile, config.tls.caKeyFile].map((f) =>
      readFile(f, 'utf8'),
    ),
  );
  const registry = new Registry();
  const rawStore = await openStore(config, logger);
  const cleanups: (() => Promise<void>)[] = [() => rawStore.close()];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) {
      await step().catch((err) => logger.error({ err }, 'error while closing'));
    }
  };
  try {
    const store = instrumentStore(rawStore, registry);
    const limits = limitsOf(config);
    const runtime = await createControlPlane({
      store,
      ca: { certPem: caCert as string, keyPem: caKey as string },
      clusterName: config.clusterName,
      logger: logger.child({ component: 'controlplane' }),
      ...tunables(config),
      limits,
      quotas: quotasFrom(config.quotas),
      registry,
    });
    cleanups.push(() => runtime.close());
    const app = buildApp({
      runtime,
      logger,
      registry,
      ...(config.bodyLimit !== undefined ? { bodyLimit: config.bodyLimit } : {}),
      limits,
      // A client certificate is asked for, never required: a joining machine
      // has none yet. Only a chain verified against the cluster CA counts.
      https: { cert, key, ca: caCert, requestCert: true, rejectUnauthorized: false },
    });
    cleanups.push(() => app.close());
    await app.listen({
      host: config.listen.host,
      port: config.listen.port,
      listenTextResolver: (address) => `fastify listening at ${address}`,
    });
    const { port } = app.server.address() as AddressInfo;
    const url = urlOf(config.listen.host, port);
    logger.info(
      { url, cluster: config.clusterName, store: rawStore.backend },
      'clusterd listening',
    );
    const grpcAddress = config.grpcListen
      ? await listenGrpc(
          config.grpcListen,
          runtime,
          logger,
          { cert, key, ca: caCert } as { cert: string; key: string; ca: string },
          limits,
          cleanups,
        )
      : undefined;
    let closing: Promise<void> | undefined;
    return {
      url,
      ...(grpcAddress !== undefined ? { grpcAddress } : {}),
      close: () => {
        closing ??= cleanup().then(() => logger.info('clusterd closed'));
        return closing;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The command line: exit 0 on a clean signal-driven close, 2 on a usage or config error. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const values = parseDaemonArgs('clusterd', USAGE, argv);
  if (!values) return;

  let config: ClusterdConfig;
  try {
    config = await loadConfig(values.config);
  } catch (err) {
    // The catalogue's message speaks of requests; for a config file the detail says it all.
    const prefix = `${ERRORS.INVALID_ARGUMENT.message}: `;
    const message = (err as Error).message;
    const detail = message.startsWith(prefix) ? message.slice(prefix.length) : message;
    process.stderr.write(`clusterd: bad config ${values.config}: ${detail}\n`);
    process.exitCode = 2;
    return;
  }
  const logger = pino({ level: config.logLevel ?? 'info' });
  let running: RunningClusterd;
  try {
    running = await startClusterd(config, logger);
  } catch (err) {
    if (isAmalgamError(err, 'INVALID_ARGUMENT') && typeof err.details.field === 'string') {
      // A file the config names is wrong (e.g. store.tls.cert): say which, no stack trace,
      // and exit 2 like any bad config (clusterd.service does not restart on 2).
      const detail = err.message.replace(`${ERRORS.INVALID_ARGUMENT.message}: `, '');
      logger.fatal({ code: err.code, field: err.details.field }, `bad config: ${detail}`);
      process.stderr.write(`clusterd: bad config ${values.config}: ${detail}\n`);
      process.exitCode = 2;
      return;
    }
    logger.fatal(
      { err, code: isAmalgamError(err) ? err.code : undefined },
      'clusterd did not start',
    );
    process.exitCode = 1;
    return;
  }

  closeOnSignals(logger, () => running.close());
}

const invokedDirectly =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) await main();
