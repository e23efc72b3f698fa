/**
 * Checkpoint directories between agents, and logs to `clusteradm logs`,
 * over the agent's own HTTPS endpoint with mutual TLS (the node certificates
 * the cluster CA issued: only cluster members connect, and the sender is
 * known by its certificate, CN `node:<name>`).
 *
 * A directory travels as a stream of frames, one per regular file:
 *   u32 BE path length | path (UTF-8, relative, no `..`) | u32 BE size high | u32 BE size low | bytes
 * and a final frame of path length 0. The receiver writes into a fresh
 * directory and renames it into place only after the final frame, so a cut
 * transfer never looks complete.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join, normalize, sep } from 'node:path';
import type { TLSSocket } from 'node:tls';

const NODE_ORGANIZATION = 'amalgam:nodes';
const MAX_PATH = 4096;

async function listFiles(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listFiles(root, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out.sort();
}

/** The frames of `dir`, as a stream of buffers. */
export async function* packDirectory(dir: string): AsyncGenerator<Buffer> {
  for (const rel of await listFiles(dir)) {
    const file = join(dir, rel);
    const { size } = await stat(file);
    const path = Buffer.from(rel, 'utf8');
    const header = Buffer.alloc(12);
    header.writeUInt32BE(path.length, 0);
    header.writeUInt32BE(Math.floor(size / 2 ** 32), 4);
    header.writeUInt32BE(size % 2 ** 32, 8);
    // path goes between the length and the size: reorder into one buffer
    yield Buffer.concat([header.subarray(0, 4), path, header.subarray(4)]);
    let sent = 0;
    for await (const chunk of createReadStream(file)) {
      const b = chunk as Buffer;
      const take = b.subarray(0, Math.max(0, size - sent));
      sent += take.length;
      yield take;
    }
    if (sent !== size) throw new Error(`${file} changed while it was sent`);
  }
  yield Buffer.alloc(4); // path length 0: the end
}

function safeRelative(rel: string): string {
  const n = normalize(rel);
  if (n.startsWith('..') || n.startsWith(sep) || n.includes(`${sep}..${sep}`) || n === '.') {
    throw new Error(`unsafe path in checkpoint: ${JSON.stringify(rel)}`);
  }
  return n;
}

/** Reads frames from `input` into `target` (replaced atomically once complete). */
export async function unpackDirectory(
  input: AsyncIterable<Buffer>,
  target: string,
): Promise<number> {
  const temp = `${target}.incoming-${process.pid}-${Date.now()}`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  let buf: Buffer = Buffer.alloc(0);
  let files = 0;
  let done = false;
  let current: { out: ReturnType<typeof createWriteStream>; left: number } | null = null;
  const write = (out: ReturnType<typeof createWriteStream>, chunk: Buffer) =>
    new Promise<void>((resolve, reject) =>
      out.write(chunk, (err) => (err ? reject(err) : resolve())),
    );
  const finish = (out: ReturnType<typeof createWriteStream>) =>
    new Promise<void>((resolve, reject) => {
      out.once('error', reject);
      out.end(() => resolve());
    });
  try {
    for await (const chunk of input) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        if (done) {
          if (buf.length > 0) throw new Error('bytes after the end of the checkpoint');
          break;
        }
        if (current) {
          const take = buf.subarray(0, Math.min(buf.length, current.left));
          if (take.length > 0) await write(current.out, take);
          current.left -= take.length;
          buf = buf.subarray(take.length);
          if (current.left === 0) {
            await finish(current.out);
            current = null;
            files++;
            continue;
          }
          break;
        }
        if (buf.length < 4) break;
        const pathLength = buf.readUInt32BE(0);
        if (pathLength === 0) {
          done = true;
          buf = buf.subarray(4);
          continue;
        }
        if (pathLength > MAX_PATH) throw new Error('path too long in checkpoint');
        if (buf.length < 4 + pathLength + 8) break;
        const rel = safeRelative(buf.subarray(4, 4 + pathLength).toString('utf8'));
        const size = buf.readUInt32BE(4 + pathLength) * 2 ** 32 + buf.readUInt32BE(8 + pathLength);
        buf = buf.subarray(12 + pathLength);
        const file = join(temp, rel);
        await mkdir(dirname(file), { recursive: true });
        const out = createWriteStream(file);
        current = { out, left: size };
        if (size === 0) {
          await finish(out);
          current = null;
          files++;
        }
      }
    }
    if (!done || current) throw new Error('the checkpoint stream was cut');
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
    return files;
  } catch (err) {
    current?.out.destroy();
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

export interface Tls {
  ca: string;
  cert: string;
  key: string;
}

/** Who sent a request: `admin`, `node:<name>`, or null (the CA verified the chain already). */
function peerOf(req: IncomingMessage): string | null {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  const subject = cert?.subject as unknown as Record<string, unknown> | undefined;
  const cn = subject?.CN;
  if (typeof cn !== 'string') return null;
  if (cn.startsWith('node:') && subject?.O === NODE_ORGANIZATION) return cn;
  if (cn === 'admin') return 'admin';
  return null;
}

export interface EndpointHandlers {
  /**
   * A checkpoint for (cpid, epoch) from node `from` is arriving: the directory
   * to put it in, or an Error (answered 409) when this agent does not expect it.
   */
  receiveInto(cpid: number, epoch: number, from: string): Promise<string>;
  /** Called once the directory is complete. */
  received(cpid: number, epoch: number, dir: string): void;
  /** The log file of a cluster process on this node, or null. */
  logFile(cpid: number): string | null;
  /** Whether a copy of `cpid` runs here (a followed log ends when none does). */
  running(cpid: number): boolean;
}

export interface AgentEndpoint {
  address: string;
  close(): Promise<void>;
}

export async function startAgentEndpoint(
  tls: Tls,
  host: string,
  port: number,
  handlers: EndpointHandlers,
): Promise<AgentEndpoint> {
  const server: Server = createServer(
    { ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: true },
    (req, res) => void handle(req, res),
  );
  const answer = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const peer = peerOf(req);
      if (!peer) return answer(res, 401, { error: 'a cluster certificate is required' });
      const url = new URL(req.url ?? '/', 'https://agent');
      const checkpoint = /^\/v1\/checkpoints\/(\d{1,10})\/(\d{1,10})$/.exec(url.pathname);
      if (req.method === 'PUT' && checkpoint) {
        if (!peer.startsWith('node:')) return answer(res, 403, { error: 'nodes only' });
        const cpid = Number(checkpoint[1]);
        const epoch = Number(checkpoint[2]);
        let dir: string;
        try {
          dir = await handlers.receiveInto(cpid, epoch, peer.slice(5));
        } catch (err) {
          req.resume();
          return answer(res, 409, { error: (err as Error).message });
        }
        const files = await unpackDirectory(req as AsyncIterable<Buffer>, dir);
        handlers.received(cpid, epoch, dir);
        return answer(res, 200, { files });
      }
      const logs = /^\/v1\/logs\/(\d{1,10})$/.exec(url.pathname);
      if (req.method === 'GET' && logs) {
        const cpid = Number(logs[1]);
        const file = handlers.logFile(cpid);
        if (!file) return answer(res, 404, { error: `no log of ${cpid} on this node` });
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        await streamLog(file, url.searchParams.get('follow') === '1', res, () =>
          handlers.running(cpid),
        );
        return;
      }
      answer(res, 404, { error: 'no such route' });
    } catch (err) {
      if (!res.headersSent) answer(res, 500, { error: (err as Error).message });
      else res.destroy();
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
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
        headers: { 'content-type': 'application/octet-stream' },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => {
          if (res.statusCode === 200) resolve((JSON.parse(text) as { files: number }).files);
          else reject(new Error(`${to} refused the checkpoint: ${res.statusCode} ${text}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('checkpoint transfer timed out')));
    req.on('error', reject);
    void (async () => {
      try {
        if (dir !== null) {
          for await (const frame of packDirectory(dir)) {
            if (!req.write(frame)) await new Promise((r) => req.once('drain', r));
          }
        } else req.write(Buffer.alloc(4));
        req.end();
      } catch (err) {
        req.destroy(err as Error);
      }
    })();
  });
}
