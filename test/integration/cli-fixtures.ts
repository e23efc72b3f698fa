/**
 * Shared by the clusteradm and client integration tests: a throwaway PKI,
 * a fake clusterd (HTTPS on 127.0.0.1 that records every request it gets and
 * answers from a handler), and running `bin/clusteradm.mjs` as a user would.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import {
  type ClusterCa,
  caCertHash,
  createClusterCa,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
} from '../../services/pki/index.ts';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const CLUSTERADM = fileURLToPath(new URL('../../bin/clusteradm.mjs', import.meta.url));

export interface TestPki {
  ca: ClusterCa;
  caCertHash: string;
  serverCert: string;
  /** clusterd's certificate followed by the CA, as `clusteradm init` writes it. */
  serverChain: string;
  serverKey: string;
  admin: { cert: string; key: string };
}

export async function createTestPki(): Promise<TestPki> {
  const ca = await createClusterCa({ commonName: 'amalgam-cli-test-ca' });
  const server = await createKeyAndCsr({ commonName: 'clusterd' });
  const serverCert = await signCsr(ca, server.csrPem, {
    commonName: 'clusterd',
    organization: 'amalgam:control-plane',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usages: ['server'],
    validityDays: 1,
  });
  const admin = await issueAdminCredential(ca, { validityDays: 1 });
  return {
    ca,
    caCertHash: caCertHash(ca.certPem),
    serverCert,
    serverChain: `${serverCert.trimEnd()}\n${ca.certPem}`,
    serverKey: server.keyPem,
    admin: { cert: admin.certPem, key: admin.keyPem },
  };
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Subject CN of a client certificate verified against the CA, if one was presented. */
  clientCn: string | undefined;
}

export interface FakeReply {
  /** Cut the connection instead of answering (the request was received). */
  destroy?: boolean;
  status: number;
  body?: unknown;
  contentType?: string;
}

export type FakeHandler = (request: RecordedRequest) => FakeReply | Promise<FakeReply>;

export interface FakeServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** TCP connections accepted (a CA discovery is one, and sends no request). */
  connections: number;
  server: Server;
  close(): Promise<void>;
}

export interface FakeServerOptions {
  port?: number;
  /**
   * False: present the server certificate alone, and do not load the CA at
   * all (OpenSSL would otherwise complete the chain from it).
   */
  presentCa?: boolean;
}

/** HTTPS on 127.0.0.1 with `pki`'s server chain; asks for (never requires) a client certificate. */
export async function startFakeServer(
  pki: TestPki,
  handler: FakeHandler,
  options: FakeServerOptions = {},
): Promise<FakeServer> {
  const requests: RecordedRequest[] = [];
  const presentCa = options.presentCa ?? true;
  const server = createServer({
    cert: presentCa ? pki.serverChain : pki.serverCert,
    key: pki.serverKey,
    ...(presentCa ? { ca: pki.ca.certPem } : {}),
    requestCert: true,
    rejectUnauthorized: false,
  });
  const fake: FakeServer = {
    url: '',
    port: 0,
    requests,
    connections: 0,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => {
    fake.connections++;
  });
  server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const socket = req.socket as TLSSocket;
      const peer = socket.authorized ? socket.getPeerCertificate() : undefined;
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        clientCn: typeof peer?.subject?.CN === 'string' ? peer.subject.CN : undefined,
      };
      requests.push(recorded);
      let reply: FakeReply;
      try {
        reply = await handler(recorded);
      } catch (err) {
        reply = { status: 500, body: { code: 'INTERNAL', detail: String(err) } };
      }
      if (reply.destroy) {
        req.socket.destroy();
        return;
      }
      if (reply.body === undefined) {
        res.writeHead(reply.status).end();
        return;
      }
      res
        .writeHead(reply.status, {
          'content-type':
            reply.contentType ??
            (reply.status >= 400 ? 'application/problem+json' : 'application/json'),
        })
        .end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  fake.port = (server.address() as AddressInfo).port;
  fake.url = `https://127.0.0.1:${fake.port}`;
  return fake;
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bin/clusteradm.mjs` in a child process, without tap's loaders in NODE_OPTIONS. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLUSTERADM, ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    // A hung command is a failure, not a hung suite.
    const watchdog = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(watchdog);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs clusteradm inside this process (the same code as the binary, without
 * the cost of a process start); for the admin commands of long scenarios.
 */
export async function runCliInProcess(args: string[]): Promise<CliRun> {
  const { runClusteradm } = await import('../../services/cli/main.ts');
  let stdout = '';
  let stderr = '';
  const code = await runClusteradm(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env: {},
    userHome: tmpdir(),
    cwd: REPO,
    now: Date.now,
    hostname,
  });
  return { code, stdout, stderr };
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer: createNetServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
