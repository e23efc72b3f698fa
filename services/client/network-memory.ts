/**
 * The network memory space from any machine: read, write and atomically
 * update any global address without knowing which node holds it.
 *
 * The routing table is the layout (`client.memory.layout()`: which node owns
 * which range) and the nodes' published page servers (`client.nodes.list()`,
 * `NodeView.pageserver`). A request is split at range boundaries into one piece
 * per owner, and each piece into requests of at most `chunkBytes` (the wire's
 * 1 MiB limit); all of them go out at once, pipelined on one connection per
 * node, and a read is reassembled in address order.
 *
 * The table is re-read when an address has no known owner, when a page
 * server refuses an address as out of its range, and when a connection
 * fails; an address that no node owns after that is ADDRESS_UNMAPPED. A page
 * server that cannot be reached is a ClientError UNAVAILABLE (never a hang on
 * connect: `connectTimeoutMs`). Reads and writes are retried once after a lost
 * connection (they are idempotent); CAS64 and FETCH_ADD64 only when the
 * request was never sent, since one that reached the server may have applied.
 */

import type { PageServerEndpoint, SegmentView } from '../api/contracts.ts';
import { MAX_PAYLOAD } from '../api/wire.ts';
import { AmalgamError } from '../core/errors.ts';
import type { NodeRange } from '../core/memory-layout.ts';
import type { Extent } from '../core/segments.ts';
import type { AmalgamClient } from './client.ts';
import { ClientError } from './errors.ts';
import {
  PageServerClient,
  PageServerConnectionError,
  PageServerError,
  type PageServerTlsOptions,
} from './pageserver-client.ts';

export interface NetworkMemoryOptions {
  /** Where the routing table comes from. */
  client: Pick<AmalgamClient, 'memory' | 'nodes'>;
  /**
   * Credentials for page servers that speak mutual TLS (a node certificate or
   * the admin credential). Plaintext-loopback page servers need none.
   */
  tls?: Omit<PageServerTlsOptions, 'node'>;
  /** Bytes per page-server request; default and maximum 1 MiB. */
  chunkBytes?: number;
  /** Give up connecting to a page server after this long. Default 5 s. */
  connectTimeoutMs?: number;
}

/** One owner's part of a request: [address, address + length), at `offset` of the caller's buffer. */
interface Piece {
  node: string;
  address: number;
  length: number;
  offset: number;
}

interface Connection {
  address: string;
  client: Promise<PageServerClient>;
}

class NotSent extends Error {}

function parseAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(colon + 1)) };
}

function checkRange(address: number, length: number): void {
  if (!Number.isSafeInteger(address) || address < 0) {
    throw new AmalgamError('INVALID_ARGUMENT', 'address: an integer >= 0', { field: 'address' });
  }
  if (!Number.isSafeInteger(length) || length < 0 || !Number.isSafeInteger(address + length)) {
    throw new AmalgamError('INVALID_ARGUMENT', 'length: an integer >= 0', { field: 'length' });
  }
}

function checkWord(address: number): void {
  checkRange(address, 8);
  if (address % 8 !== 0) {
    throw new AmalgamError('INVALID_ARGUMENT', 'address: 8-byte aligned for a 64-bit atomic', {
      field: 'address',
    });
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class NetworkMemory {
  private ranges: NodeRange[] = [];
  private endpoints = new Map<string, PageServerEndpoint>();
  private readonly connections = new Map<string, Connection>();
  private refreshing: Promise<void> | null = null;
  private closed = false;
  private readonly chunkBytes: number;
  private readonly connectTimeoutMs: number;

  private constructor(private readonly options: NetworkMemoryOptions) {
    this.chunkBytes = Math.min(options.chunkBytes ?? MAX_PAYLOAD, MAX_PAYLOAD);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  }

  /** Reads the routing table once; connections are opened on first use. */
  static async open(options: NetworkMemoryOptions): Promise<NetworkMemory> {
    const memory = new NetworkMemory(options);
    await memory.refresh();
    return memory;
  }

  /** Re-reads the layout and the nodes' page servers (concurrent calls share one read). */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const [layout, nodes] = await Promise.all([
          this.options.client.memory.layout(),
          this.options.client.nodes.list(),
        ]);
        this.ranges = [...layout.layout.ranges].sort((a, b) => a.start - b.start);
        this.endpoints = new Map(
          nodes.flatMap((n) => (n.pageserver ? [[n.name, n.pageserver] as const] : [])),
        );
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  async read(address: number, length: number): Promise<Buffer> {
    checkRange(address, length);
    const out = Buffer.alloc(length);
    await this.eachPiece(address, length, true, async (conn, piece) => {
      const bytes = await conn.read(piece.address, piece.length);
      bytes.copy(out, piece.offset);
    });
    return out;
  }

  async write(address: number, bytes: Uint8Array): Promise<void> {
    checkRange(address, bytes.length);
    await this.eachPiece(address, bytes.length, true, (conn, piece) =>
      conn.write(piece.address, bytes.subarray(piece.offset, piece.offset + piece.length)),
    );
  }

  /** Compare the u64 at an 8-aligned address with `expected`; if equal store `desired`. */
  async cas64(
    address: number,
    expected: bigint,
    desired: bigint,
  ): Promise<{ swapped: boolean; old: bigint }> {
    checkWord(address);
    let result: { swapped: boolean; old: bigint } | undefined;
    await this.eachPiece(address, 8, false, async (conn) => {
      result = await conn.cas64(address, expected, desired);
    });
    return result as { swapped: boolean; old: bigint };
  }

  /** Add `delta` (wrapping) to the u64 at an 8-aligned address; returns the old value. */
  async fetchAdd64(address: number, delta: bigint): Promise<bigint> {
    checkWord(address);
    let old = 0n;
    await this.eachPiece(address, 8, false, async (conn) => {
      old = await conn.fetchAdd64(address, delta);
    });
    return old;
  }

  /** Reads `length` bytes at `offset` of a segment (its extents in order). */
  async readSegment(segment: SegmentView, offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await Promise.all(
      segmentPieces(segment, offset, length).map(async (p) => {
        (await this.read(p.address, p.length)).copy(out, p.offset);
      }),
    );
    return out;
  }

  /** Writes `bytes` at `offset` of a segment (its extents in order). */
  async writeSegment(segment: SegmentView, offset: number, bytes: Uint8Array): Promise<void> {
    await Promise.all(
      segmentPieces(segment, offset, bytes.length).map((p) =>
        this.write(p.address, bytes.subarray(p.offset, p.offset + p.length)),
      ),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map((c) => c.client.then((x) => x.close()).catch(() => {})));
  }

  // ---- routing ----

  /** Splits [address, address + length) per owner and into chunks, or names the first unowned address. */
  private split(address: number, length: number): Piece[] | { unmapped: number } {
    const pieces: Piece[] = [];
    const end = address + length;
    for (let cursor = address; cursor < end; ) {
      const range = this.ownerOf(cursor);
      if (!range) return { unmapped: cursor };
      const stop = Math.min(end, range.start + range.size);
      for (; cursor < stop; ) {
        const n = Math.min(this.chunkBytes, stop - cursor);
        pieces.push({ node: range.node, address: cursor, length: n, offset: cursor - address });
        cursor += n;
      }
    }
    return pieces;
  }

  private ownerOf(address: number): NodeRange | undefined {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.ranges[mid] as NodeRange;
      if (address < r.start) hi = mid - 1;
      else if (address >= r.start + r.size) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  private async route(address: number, length: number): Promise<Piece[]> {
    let pieces = this.split(address, length);
    if (!Array.isArray(pieces)) {
      await this.refresh();
      pieces = this.split(address, length);
    }
    if (!Array.isArray(pieces)) {
      throw new AmalgamError('ADDRESS_UNMAPPED', `0x${pieces.unmapped.toString(16)}`, {
        address: pieces.unmapped,
      });
    }
    return pieces;
  }

  /**
   * Runs `op` on every piece concurrently. Once, after a stale table (a page
   * server refused the address) or a failed connection, re-reads the table and
   * runs the pieces that failed again.
   */
  private async eachPiece(
    address: number,
    length: number,
    idempotent: boolean,
    op: (conn: PageServerClient, piece: Piece) => Promise<void>,
  ): Promise<void> {
    if (this.closed) throw new ClientError('UNAVAILABLE', 'the network memory was closed');
    let pending = await this.route(address, length);
    for (let attempt = 0; ; attempt++) {
      const failed: { piece: Piece; error: unknown }[] = [];
      await Promise.all(
        pending.map(async (piece) => {
          try {
            const conn = await this.connection(piece.node).catch((error: unknown) => {
              throw new NotSent(String((error as Error).message ?? error), { cause: error });
            });
            await op(conn, piece);
          } catch (error) {
            failed.push({ piece, error });
          }
        }),
      );
      if (failed.length === 0) return;
      const retry = failed.every(
        ({ error }) =>
          error instanceof NotSent ||
          (error instanceof PageServerError && error.statusName === 'E_OUT_OF_RANGE') ||
          (idempotent && error instanceof PageServerConnectionError),
      );
      if (attempt > 0 || !retry) throw this.failure(failed[0] as { piece: Piece; error: unknown });
      for (const { piece, error } of failed) {
        if (!(error instanceof PageServerError)) this.forget(piece.node);
      }
      await this.refresh();
      const again: Piece[] = [];
      for (const { piece } of failed) {
        const routed = await this.route(piece.address, piece.length);
        for (const p of routed) again.push({ ...p, offset: p.offset + piece.offset });
      }
      pending = again;
    }
  }

  private failure({ piece, error }: { piece: Piece; error: unknown }): unknown {
    if (error instanceof NotSent || error instanceof PageServerConnectionError) {
      return new ClientError(
        'UNAVAILABLE',
        `the page server of node ${piece.node} (address 0x${piece.address.toString(16)}): ${(error as Error).message}`,
        { node: piece.node, address: piece.address },
        { cause: error },
      );
    }
    return error;
  }

  private forget(node: string): void {
    const conn = this.connections.get(node);
    if (!conn) return;
    this.connections.delete(node);
    void conn.client.then((c) => c.close()).catch(() => {});
  }

  private connection(node: string): Promise<PageServerClient> {
    const endpoint = this.endpoints.get(node);
    if (!endpoint) {
      return Promise.reject(new Error(`node ${node} publishes no page server`));
    }
    const existing = this.connections.get(node);
    if (existing && existing.address === endpoint.address) return existing.client;
    if (existing) this.forget(node);
    if (endpoint.tls && !this.options.tls) {
      return Promise.reject(
        new Error(`node ${node}'s page server speaks TLS and no credentials were given`),
      );
    }
    const { host, port } = parseAddress(endpoint.address);
    const client = withTimeout(
      PageServerClient.connect(
        host,
        port,
        endpoint.tls && this.options.tls ? { tls: { ...this.options.tls, node } } : {},
      ),
      this.connectTimeoutMs,
      `connect to ${endpoint.address}`,
    );
    const conn: Connection = { address: endpoint.address, client };
    this.connections.set(node, conn);
    client.then(
      (c) => {
        // A connection that closes is dropped, so the next request reconnects.
        void c.closed().then(() => {
          if (this.connections.get(node) === conn) this.connections.delete(node);
        });
      },
      () => {
        if (this.connections.get(node) === conn) this.connections.delete(node);
      },
    );
    return client;
  }
}

/** [offset, offset + length) of a segment as global pieces, in segment order. */
export function segmentPieces(
  segment: Pick<SegmentView, 'id' | 'size' | 'extents'>,
  offset: number,
  length: number,
): { address: number; length: number; offset: number }[] {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > segment.size) {
    throw new AmalgamError('INVALID_ARGUMENT', `offset: 0..${segment.size} in ${segment.id}`, {
      field: 'offset',
    });
  }
  if (!Number.isSafeInteger(length) || length < 0 || offset + length > segment.size) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `length: offset + length must be <= ${segment.size}, the size of ${segment.id}`,
      { field: 'length' },
    );
  }
  const pieces: { address: number; length: number; offset: number }[] = [];
  let base = 0; // segment offset of the current extent
  const end = offset + length;
  for (const extent of segment.extents as Extent[]) {
    const from = Math.max(offset, base);
    const to = Math.min(end, base + extent.size);
    if (from < to) {
      pieces.push({
        address: extent.start + (from - base),
        length: to - from,
        offset: from - offset,
      });
    }
    base += extent.size;
    if (base >= end) break;
  }
  return pieces;
}
