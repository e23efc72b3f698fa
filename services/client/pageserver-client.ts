/**
 * A client for one page server over the amalgam wire protocol
 * (native/include/amalgam_wire.h): 32-byte little-endian headers, request ids
 * echoed so many requests are in flight on one connection (pipelining).
 *
 * Two transports, as the page server has: mutual TLS with the cluster CA (the
 * `tls` option; the server's certificate is its node certificate, so the
 * chain is verified against the cluster CA and, when `node` is given, its
 * subject must be CN `node:<name>` O `amalgam:nodes`), or plaintext, which the
 * server only speaks on loopback with --plaintext-loopback.
 */
import { connect, type Socket } from 'node:net';
import { type PeerCertificate, connect as tlsConnect } from 'node:tls';
import {
  HEADER_SIZE,
  Opcode,
  RequestField,
  ResponseField,
  ResponseFlag,
  STAT_NAMES,
  WIRE_MAGIC,
  WIRE_VERSION,
  WireStatus,
  type WireStatusName,
} from '../api/wire.ts';

/** Mutual TLS with the cluster: PEM strings (or Buffers). */
export interface PageServerTlsOptions {
  /** The cluster CA certificate: the only trust anchor. */
  ca: string | Buffer;
  /** This client's certificate (a node certificate or the admin credential) and key. */
  cert: string | Buffer;
  key: string | Buffer;
  /**
   * The node whose page server this is: its certificate must then carry CN
   * `node:<node>`. Without it any certificate the cluster CA issued is accepted.
   */
  node?: string;
}

export interface PageServerConnectOptions {
  tls?: PageServerTlsOptions;
}

const STATUS_NAMES = new Map<number, WireStatusName>(
  Object.entries(WireStatus).map(([k, v]) => [v, k as WireStatusName]),
);

export type PageServerStats = Record<(typeof STAT_NAMES)[number], bigint>;

/** A request the page server answered with a non-zero status. */
export class PageServerError extends Error {
  override readonly name = 'PageServerError';
  constructor(
    readonly status: number,
    readonly statusName: WireStatusName | 'UNKNOWN',
    readonly opcode: number,
    readonly requestId: bigint,
  ) {
    super(`page server answered ${statusName} (status ${status}) to opcode ${opcode}`);
  }
}

/** The connection failed or closed with requests in flight. */
export class PageServerConnectionError extends Error {
  override readonly name = 'PageServerConnectionError';
}

const NODE_ORGANIZATION = 'amalgam:nodes';

/**
 * The page server's certificate is its node certificate (DNS SAN `<name>`
 * only, so no host name check): the chain was verified against the cluster
 * CA; here the subject must name a node, and the expected one when given.
 */
function checkNodeIdentity(cert: PeerCertificate, node: string | undefined): Error | undefined {
  const subject = cert.subject as unknown as Record<string, unknown> | undefined;
  const cn = subject?.CN;
  const o = subject?.O;
  if (typeof cn !== 'string' || typeof o !== 'string' || o !== NODE_ORGANIZATION) {
    return new Error('page server certificate does not name a cluster node');
  }
  if (!cn.startsWith('node:')) {
    return new Error(`page server certificate names ${cn}, not a node`);
  }
  if (node !== undefined && cn !== `node:${node}`) {
    return new Error(`page server certificate names ${cn}, expected node:${node}`);
  }
  return undefined;
}

interface Pending {
  opcode: number;
  resolve: (r: { flags: number; payload: Buffer }) => void;
  reject: (e: Error) => void;
}

export type Address = bigint | number;

export class PageServerClient {
  private nextId = 1n;
  private readonly pending = new Map<bigint, Pending>();
  /** The response header being received, and how much of it is there. */
  private readonly header = Buffer.alloc(HEADER_SIZE);
  private headerFill = 0;
  /**
   * The payload of the frame whose header is complete: allocated at its full
   * length once, and filled straight from the socket's chunks, so every answer
   * byte is copied exactly once however the stream is cut.
   */
  private payload: Buffer | null = null;
  private payloadFill = 0;
  private closedError: Error | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.failAll(new PageServerConnectionError(err.message)));
    socket.on('close', () => this.failAll(new PageServerConnectionError('connection closed')));
  }

  static connect(
    host: string,
    port: number,
    options: PageServerConnectOptions = {},
  ): Promise<PageServerClient> {
    const tls = options.tls;
    return new Promise((resolve, reject) => {
      const socket = tls
        ? tlsConnect({
            host,
            port,
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
            minVersion: 'TLSv1.2',
            rejectUnauthorized: true,
            ...(tls.node !== undefined ? { servername: tls.node } : {}),
            checkServerIdentity: (_host, cert) => checkNodeIdentity(cert, tls.node),
          })
        : connect({ host, port });
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        socket.off('error', reject);
        resolve(new PageServerClient(socket));
      });
      socket.once('error', reject);
    });
  }

  async read(addr: Address, len: number): Promise<Buffer> {
    const r = await this.request(Opcode.READ, BigInt(addr), len, null);
    return r.payload;
  }

  async write(addr: Address, bytes: Uint8Array): Promise<void> {
    await this.request(Opcode.WRITE, BigInt(addr), bytes.length, bytes);
  }

  /** Compare the u64 at an 8-aligned addr with expected; if equal store desired. */
  async cas64(
    addr: Address,
    expected: bigint,
    desired: bigint,
  ): Promise<{ swapped: boolean; old: bigint }> {
    const p = Buffer.alloc(16);
    p.writeBigUInt64LE(BigInt.asUintN(64, expected), 0);
    p.writeBigUInt64LE(BigInt.asUintN(64, desired), 8);
    const r = await this.request(Opcode.CAS64, BigInt(addr), 8, p);
    return { swapped: (r.flags & ResponseFlag.SWAPPED) !== 0, old: r.payload.readBigUInt64LE(0) };
  }

  /** Add delta (wrapping) to the u64 at an 8-aligned addr; returns the old value. */
  async fetchAdd64(addr: Address, delta: bigint): Promise<bigint> {
    const p = Buffer.alloc(8);
    p.writeBigUInt64LE(BigInt.asUintN(64, delta), 0);
    const r = await this.request(Opcode.FETCH_ADD64, BigInt(addr), 8, p);
    return r.payload.readBigUInt64LE(0);
  }

  async stat(): Promise<PageServerStats> {
    const r = await this.request(Opcode.STAT, 0n, 0, null);
    const out = {} as PageServerStats;
    STAT_NAMES.forEach((name, i) => {
      out[name] = i * 8 + 8 <= r.payload.length ? r.payload.readBigUInt64LE(i * 8) : 0n;
    });
    return out;
  }

  /** Send raw bytes (tests and fuzzing only): no framing, no response tracking. */
  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  /** Resolves once the server closes the connection (or it already is closed). */
  closed(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || this.closedError) return resolve();
      this.socket.once('close', () => resolve());
    });
  }

  private request(
    opcode: number,
    addr: bigint,
    length: number,
    payload: Uint8Array | null,
  ): Promise<{ flags: number; payload: Buffer }> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const h = Buffer.alloc(HEADER_SIZE);
    h.writeUInt32LE(WIRE_MAGIC, RequestField.magic);
    h.writeUInt8(WIRE_VERSION, RequestField.version);
    h.writeUInt8(opcode, RequestField.opcode);
    h.writeUInt16LE(0, RequestField.flags);
    h.writeBigUInt64LE(id, RequestField.requestId);
    h.writeBigUInt64LE(BigInt.asUintN(64, addr), RequestField.addr);
    h.writeUInt32LE(length >>> 0, RequestField.length);
    h.writeUInt32LE(0, RequestField.reserved);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { opcode, resolve, reject });
      this.socket.write(payload ? Buffer.concat([h, payload]) : h);
    });
  }

  private onData(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.payload === null) {
        const n = Math.min(HEADER_SIZE - this.headerFill, chunk.length - off);
        chunk.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill < HEADER_SIZE) return;
        if (
          this.header.readUInt32LE(ResponseField.magic) !== WIRE_MAGIC ||
          this.header.readUInt8(ResponseField.version) !== WIRE_VERSION
        ) {
          this.failAll(new PageServerConnectionError('bad response header from the page server'));
          this.socket.destroy();
          return;
        }
        this.payload = Buffer.allocUnsafe(this.header.readUInt32LE(ResponseField.length));
        this.payloadFill = 0;
      }
      const n = Math.min(this.payload.length - this.payloadFill, chunk.length - off);
      chunk.copy(this.payload, this.payloadFill, off, off + n);
      this.payloadFill += n;
      off += n;
      if (this.payloadFill === this.payload.length) this.complete(this.payload);
    }
  }

  /** One whole frame is in: `header` and its payload; settle its request. */
  private complete(payload: Buffer): void {
    const flags = this.header.readUInt16LE(ResponseField.flags);
    const id = this.header.readBigUInt64LE(ResponseField.requestId);
    const status = this.header.readUInt32LE(ResponseField.status);
    const opcode = this.header.readUInt8(ResponseField.opcode);
    this.payload = null;
    this.headerFill = 0;
    const p = this.pending.get(id);
    if (!p) return; // an answer to a raw (untracked) request
    this.pending.delete(id);
    if (status !== WireStatus.OK) {
      p.reject(new PageServerError(status, STATUS_NAMES.get(status) ?? 'UNKNOWN', opcode, id));
    } else {
      p.resolve({ flags, payload });
    }
  }

  private failAll(err: Error): void {
    if (!this.closedError) this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
