/**
 * A TCP proxy that can make "the reply was lost after the commit" happen on demand.
 *
 * Normally a transparent byte pipe between a client and ONE etcd client URL (gRPC over HTTP/2).
 * For an `https://` member (the harness default) the proxy terminates TLS on both sides: it serves
 * the members' own server certificate and asks for a client certificate of the etcd CA, and
 * dials the member with the client credential, so it sees the HTTP/2 frames in the clear.
 * After `armDropNextReply()`:
 *  - the next request on any connection is forwarded to etcd as usual. For HTTP/2 connections
 *    (recognised by the client connection preface) "the next request" is the next client HEADERS
 *    frame, i.e. a new call: stray PING/WINDOW_UPDATE/SETTINGS frames do not trigger the drop.
 *    For any other protocol the next client bytes trigger it;
 *  - from then on every server->client byte on that connection is discarded;
 *  - as soon as the server has finished its reply to that call (END_STREAM or RST_STREAM on the
 *    triggering stream), or at the latest `dropAfterMs` (default 150 ms) after the request bytes
 *    were handed to the upstream socket, BOTH sockets of the connection are destroyed, the drop
 *    is counted and the proxy is disarmed.
 * The client then sees UNAVAILABLE / connection reset although etcd executed the request. New
 * connections pass through normally. HTTP/2 multiplexes calls, so arm only while exactly one call
 * is in flight through the proxy.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import type { EtcdPem } from './etcd-pki.ts';

export interface ReplyDroppingProxy {
  /** `http://127.0.0.1:port`, or `https://` for an https target. */
  url: string;
  armDropNextReply(): void;
  /** Whether an arm has not been consumed yet. */
  armed(): boolean;
  /** Number of completed drops. */
  dropped(): number;
  /** How many of the completed drops saw etcd's complete reply before cutting the connection. */
  droppedAfterReply(): number;
  close(): Promise<void>;
}

export interface ReplyDroppingProxyOptions {
  /** Upper bound between forwarding the armed request and cutting the connection. */
  dropAfterMs?: number;
  /** Needed for an `https://` target: the members' server credential and the client one. */
  tls?: { serverPem: EtcdPem; clientPem: EtcdPem };
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FLAG_END_STREAM = 0x1;

type FrameListener = (type: number, flags: number, streamId: number) => void;

/**
 * Incremental HTTP/2 frame boundary tracker: reports each frame header (type, flags, stream) as
 * soon as its 9 bytes have been seen. Payloads are skipped, never decoded.
 */
class H2FrameScanner {
  private prefaceLeft: number;
  private readonly header = Buffer.alloc(9);
  private headerFill = 0;
  private payloadLeft = 0;
  /** 'opaque' once the client side turns out not to speak HTTP/2 with prior knowledge. */
  mode: 'h2' | 'opaque' = 'h2';

  constructor(expectPreface: boolean) {
    this.prefaceLeft = expectPreface ? H2_PREFACE.length : 0;
  }

  push(chunk: Buffer, onFrame: FrameListener): void {
    let i = 0;
    while (i < chunk.length && this.mode === 'h2') {
      if (this.prefaceLeft > 0) {
        const at = H2_PREFACE.length - this.prefaceLeft;
        if (chunk[i] !== H2_PREFACE[at]) {
          this.mode = 'opaque';
          return;
        }
        this.prefaceLeft--;
        i++;
      } else if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - i);
        this.payloadLeft -= n;
        i += n;
      } else {
        const n = Math.min(9 - this.headerFill, chunk.length - i);
        chunk.copy(this.header, this.headerFill, i, i + n);
        this.headerFill += n;
        i += n;
        if (this.headerFill === 9) {
          this.headerFill = 0;
          this.payloadLeft = this.header.readUIntBE(0, 3);
          const type = this.header[3] as number;
          const flags = this.header[4] as number;
          const streamId = this.header.readUInt32BE(5) & 0x7fffffff;
          onFrame(type, flags, streamId);
        }
      }
    }
  }
}

interface Drop {
  /** HTTP/2 stream of the dropped call; undefined for a non-HTTP/2 connection. */
  streamId: number | undefined;
  timer: NodeJS.Timeout | undefined;
  done: boolean;
}

export async function startReplyDroppingProxy(
  target: string,
  opts: ReplyDroppingProxyOptions = {},
): Promise<ReplyDroppingProxy> {
  const dropAfterMs = opts.dropAfterMs ?? 150;
  const t = new URL(target);
  const tls = opts.tls;
  if (t.protocol !== (tls ? 'https:' : 'http:')) {
    throw new Error(`${target}: an https:// target needs opts.tls, an http:// one none`);
  }
  const targetHost = t.hostname.replace(/^\[|\]$/g, '');
  const targetPort = Number(t.port || 80);
  const dial = (): Socket =>
    tls
      ? tlsConnect({
          host: targetHost,
          port: targetPort,
          ...tls.clientPem,
          ALPNProtocols: ['h2'],
        })
      : tcpConnect({ host: targetHost, port: targetPort, allowHalfOpen: true });
  const listen = (handler: (client: Socket) => void): Server =>
    tls
      ? createTlsServer(
          {
            allowHalfOpen: true,
            ...tls.serverPem,
            requestCert: true,
            rejectUnauthorized: true,
            ALPNProtocols: ['h2'],
          },
          handler,
        )
      : createServer({ allowHalfOpen: true }, handler);

  let armed = false;
  let drops = 0;
  let dropsAfterReply = 0;
  const sockets = new Set<Socket>();

  const server = listen((client) => {
    const upstream = dial();
    sockets.add(client);
    sockets.add(upstream);
    const clientFrames = new H2FrameScanner(true);
    const serverFrames = new H2FrameScanner(false);
    let drop: Drop | undefined;

    const finish = (sawReply: boolean): void => {
      if (!drop || drop.done) return;
      drop.done = true;
      if (drop.timer) clearTimeout(drop.timer);
      drops++;
      if (sawReply) dropsAfterReply++;
      client.destroy();
      upstream.destroy();
    };

    client.on('data', (chunk: Buffer) => {
      let triggerStream: number | undefined;
      let trigger = false;
      clientFrames.push(chunk, (type, _flags, streamId) => {
        if (type === FRAME_HEADERS && streamId !== 0 && triggerStream === undefined) {
          triggerStream = streamId;
        }
      });
      if (armed && !drop) {
        if (clientFrames.mode === 'opaque') trigger = true;
        else if (triggerStream !== undefined) trigger = true;
      }
      if (trigger) {
        armed = false;
        const d: Drop = {
          streamId: clientFrames.mode === 'h2' ? triggerStream : undefined,
          timer: undefined,
          done: false,
        };
        drop = d;
        upstream.write(chunk, () => {
          if (!d.done) d.timer = setTimeout(() => finish(false), dropAfterMs);
        });
        return;
      }
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });

    upstream.on('data', (chunk: Buffer) => {
      if (drop) {
        // Discard the reply; cut the connection as soon as it is complete.
        let complete = false;
        const { streamId } = drop;
        serverFrames.push(chunk, (type, flags, sid) => {
          if (sid !== streamId) return;
          if (type === FRAME_RST_STREAM) complete = true;
          else if ((type === FRAME_HEADERS || type === FRAME_DATA) && flags & FLAG_END_STREAM) {
            complete = true;
          }
        });
        if (complete) finish(true);
        return;
      }
      serverFrames.push(chunk, () => {});
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });

    client.on('end', () => upstream.end());
    upstream.on('end', () => {
      if (!drop) client.end();
    });
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.on('close', () => {
      sockets.delete(client);
      if (!upstream.destroyed) upstream.destroy();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      // The upstream went away before the drop was complete: still a lost reply.
      if (drop && !drop.done) finish(false);
      if (!client.destroyed) client.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('unexpected listen address');

  let closed: Promise<void> | undefined;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${addr.port}`,
    armDropNextReply() {
      armed = true;
    },
    armed: () => armed,
    dropped: () => drops,
    droppedAfterReply: () => dropsAfterReply,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
}
