/**
 * Checkpoint directories between agents, and logs to `clusteradm logs`,
 * over the agent's own HTTPS endpoint with mutual TLS (certificates the
 * cluster CA issued; endpoint-access.ts decides who may do what: checkpoints
 * only from nodes the cluster still accepts with the key they present, logs
 * only to admins, operators and this node). A directory travels as the
 * frames of checkpoint-frames.ts; it is acknowledged (200) only once it is
 * durable in place, and refused (413 CHECKPOINT_TOO_LARGE) when it is larger
 * than `maxCheckpointBytes`. The sender declares the size in a header and asks
 * `Expect: 100-continue`, so a refusal (size, peer, epoch) comes before a byte
 * of the body is sent; the frames' sizes are checked as well, for a sender
 * that lies, and the connection is cut as soon as they pass the limit.
 */
import { X509Certificate } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { isAmalgamError } from '../../core/errors.ts';
import { publicKeyHash } from '../../pki/index.ts';
import {
  checkpointBytes,
  checkpointTooLarge,
  packDirectory,
  unpackDirectory,
} from './checkpoint-frames.ts';
import {
  type Access,
  checkIdentity,
  type EndpointPeer,
  mayPushCheckpoint,
  mayReadLogs,
  type PeerIdentities,
  peerOfSubject,
} from './endpoint-access.ts';

const NODE_ORGANIZATION = 'amalgam:nodes';
/** The bytes of the checkpoint's files, as the sender declares them. */
const BYTES_HEADER = 'x-amalgam-checkpoint-bytes';

export interface Tls {
  ca: string;
  cert: string;
  key: string;
}

/** The verified peer of a request and the hash of its certificate's key, or null. */
function peerOf(req: IncomingMessage): { peer: EndpointPeer; keyHash: string } | null {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  const peer = peerOfSubject(cert?.subject);
  if (!peer || !cert.raw) return null;
  const spki = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
  const der = new Uint8Array(spki).buffer;
  return { peer, keyHash: publicKeyHash(der) };
}

export interface EndpointHandlers {
  /**
   * A checkpoint for (cpid, epoch) from node `from` is arriving: the directory
   * to put it in, or an Error (answered 409) when this agent does not expect it.
   */
  receiveInto(cpid: number, epoch: number, from: string): Promise<string>;
  /** Called once the directory is complete and durable. */
  received(cpid: number, epoch: number, dir: string): void;
  /** The log file of a cluster process on this node, or null. */
  logFile(cpid: number): string | null;
  /** Whether a copy of `cpid` runs here (a followed log ends when none does). */
  running(cpid: number): boolean;
}

export interface EndpointOptions {
  tls: Tls;
  host: string;
  port: number;
  /** This agent's node. */
  node: string;
  /** The identities the cluster still accepts. */
  identities: PeerIdentities;
  /** The most bytes a received checkpoint may hold. */
  maxCheckpointBytes: number;
  logger: Logger;
}

export interface AgentEndpoint {
  address: string;
  close(): Promise<void>;
}

const answer = (res: ServerResponse, status: number, body: unknown, then?: () => void) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body), then);
};

/** The request handling of the endpoint: who asks, whether they may, and the answer. */
class EndpointRequests {
  constructor(
    readonly options: EndpointOptions,
    readonly handlers: EndpointHandlers,
  ) {}

  /** A refusal: answered with its code, logged, and the rest of the body not read. */
  refuse(req: IncomingMessage, res: ServerResponse, who: string, a: Access): void {
    if (a.ok) return;
    this.options.logger.warn(
      { peer: who, code: a.code, url: req.url },
      `agent endpoint refused: ${a.why}`,
    );
    const { socket } = req; // detached from the request once the answer is out
    answer(res, a.status, { code: a.code, error: a.why }, () => socket?.destroy());
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const from = peerOf(req);
      if (!from) {
        return answer(res, 401, {
          code: 'UNAUTHENTICATED',
          error: 'a cluster certificate is required',
        });
      }
      const { peer } = from;
      const known = checkIdentity(peer, from.keyHash, this.options.identities);
      if (!known.ok) return this.refuse(req, res, peer.commonName, known);
      const url = new URL(req.url ?? '/', 'https://agent');
      const checkpoint = /^\/v1\/checkpoints\/(\d{1,10})\/(\d{1,10})$/.exec(url.pathname);
      if (req.method === 'PUT' && checkpoint) {
        const may = mayPushCheckpoint(peer);
        if (!may.ok || peer.kind !== 'node') return this.refuse(req, res, peer.commonName, may);
        return await this.receive(
          req,
          res,
          peer.name,
          Number(checkpoint[1]),
          Number(checkpoint[2]),
        );
      }
      const logs = /^\/v1\/logs\/(\d{1,10})$/.exec(url.pathname);
      if (req.method === 'GET' && logs) {
        const may = mayReadLogs(peer, this.options.node);
        if (!may.ok) return this.refuse(req, res, peer.commonName, may);
        return await this.logs(res, Number(logs[1]), url.searchParams.get('follow') === '1');
      }
      answer(res, 404, { code: 'NOT_FOUND', error: 'no such route' });
    } catch (err) {
      if (!res.headersSent) answer(res, 500, { code: 'INTERNAL', error: (err as Error).message });
      else res.destroy();
    }
  }

  async logs(res: ServerResponse, cpid: number, follow: boolean): Promise<void> {
    const file = this.handlers.logFile(cpid);
    if (!file)
      return answer(res, 404, { code: 'NOT_FOUND', error: `no log of ${cpid} on this node` });
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    await streamLog(file, follow, res, () => this.handlers.running(cpid));
  }

  async receive(
    req: IncomingMessage,
    res: ServerResponse,
    from: string,
    cpid: number,
    epoch: number,
  ): Promise<void> {
    const max = this.options.maxCheckpointBytes;
    const declared = Number(req.headers[BYTES_HEADER] ?? req.headers['content-length'] ?? 0);
    const tooLarge = (err: unknown) => {
      const e = isAmalgamError(err, 'CHECKPOINT_TOO_LARGE')
        ? err
        : checkpointTooLarge(declared, max);
      this.refuse(req, res, `node:${from}`, {
        ok: false,
        status: 413,
        code: e.code,
        why: e.message,
      });
    };
    if (declared > max) return tooLarge(null);
    let dir: string;
    try {
      dir = await this.handlers.receiveInto(cpid, epoch, from);
    } catch (err) {
      req.resume();
      return answer(res, 409, { code: 'PROCESS_STATE_CONFLICT', error: (err as Error).message });
    }
    // Accepted: now the sender may send the body (it asked `Expect: 100-continue`).
    if (/100-continue/i.test(req.headers.expect ?? '')) res.writeContinue();
    let files: number;
    try {
      files = await unpackDirectory(req as AsyncIterable<Buffer>, dir, max);
    } catch (err) {
      if (isAmalgamError(err, 'CHECKPOINT_TOO_LARGE')) return tooLarge(err);
      throw err;
    }
    this.handlers.received(cpid, epoch, dir);
    answer(res, 200, { files });
  }
}

export async function startAgentEndpoint(
  options: EndpointOptions,
  handlers: EndpointHandlers,
): Promise<AgentEndpoint> {
  const { tls } = options;
  const requests = new EndpointRequests(options, handlers);
  const server: Server = createServer(
    { ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: true },
    (req, res) => void requests.handle(req, res),
  );
  // Expect: 100-continue: decided like any request; receive() lets the body come once accepted.
  server.on('checkContinue', (req, res) => void requests.handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const address = `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function streamLog(
  file: string,
  follow: boolean,
  res: ServerResponse,
  running: () => boolean,
): Promise<void> {
  let offset = 0;
  let closed = false;
  res.once('close', () => {
    closed = true;
  });
  for (;;) {
    const size = await stat(file).then(
      (s) => s.size,
      () => 0,
    );
    if (size > offset) {
      const stream = createReadStream(file, { start: offset, end: size - 1 });
      for await (const chunk of stream) {
        if (closed) return;
        res.write(chunk);
      }
      offset = size;
    }
    if (!follow || closed || !running()) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  res.end();
}

function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`not host:port: ${address}`);
  return { host: m[1] as string, port: Number(m[2]) };
}

function checkPeer(node: string) {
  return (_host: string, cert: { subject?: unknown }): Error | undefined => {
    const subject = cert.subject as Record<string, unknown> | undefined;
    return subject?.CN === `node:${node}` && subject?.O === NODE_ORGANIZATION
      ? undefined
      : new Error(`the agent at this address is not node ${node}`);
  };
}

/** A refusal by the receiving agent: its HTTP status and stable code. */
export class CheckpointRefused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function refusalOf(to: string, status: number, text: string): CheckpointRefused {
  let body: { code?: string; error?: string } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {}
  const code = body.code ?? 'INTERNAL';
  return new CheckpointRefused(
    status,
    code,
    `${to} refused the checkpoint: ${status} ${code} ${body.error ?? text}`,
  );
}

/** Sends `dir` (or an empty checkpoint when it is null) to node `to`'s agent. */
export async function pushCheckpoint(
  tls: Tls,
  to: string,
  address: string,
  cpid: number,
  epoch: number,
  dir: string | null,
  timeoutMs = 30_000,
): Promise<number> {
  const { host, port } = splitAddress(address);
  const bytes = dir === null ? 0 : await checkpointBytes(dir);
  let answered = false;
  return new Promise<number>((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        method: 'PUT',
        path: `/v1/checkpoints/${cpid}/${epoch}`,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        servername: to,
        checkServerIdentity: checkPeer(to),
        timeout: timeoutMs,
        headers: {
          'content-type': 'application/octet-stream',
          [BYTES_HEADER]: String(bytes),
          expect: '100-continue',
        },
        agent: false,
      },
      (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        // A refusal may come before the body is sent: it wins over the cut of our upload.
        const settle = () => {
          if (res.statusCode === 200) resolve((JSON.parse(text) as { files: number }).files);
          else reject(refusalOf(to, res.statusCode ?? 0, text));
        };
        res.on('end', () => {
          settle();
          req.destroy(); // a refusal: whatever is left of the upload is not wanted
        });
        res.on('error', settle);
      },
    );
    req.on('timeout', () => req.destroy(new Error('checkpoint transfer timed out')));
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const drained = () =>
      new Promise((r) => {
        req.once('drain', r);
        req.once('close', r);
      });
    // The body only once the receiver accepted it (100 Continue).
    req.once('continue', async () => {
      try {
        if (dir !== null) {
          for await (const frame of packDirectory(dir)) {
            if (answered || req.destroyed) return;
            if (!req.write(frame)) await drained();
          }
        } else req.write(Buffer.alloc(4));
        req.end();
      } catch (err) {
        req.destroy(err as Error);
      }
    });
    req.flushHeaders();
  });
}
