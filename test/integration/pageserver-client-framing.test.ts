/**
 * PageServerClient's frame reader against a fake page server that cuts its
 * answers at every possible place: one byte at a time, header and payload
 * split, several frames in one chunk, out-of-order answers, empty payloads
 * and error statuses. Every answer must reach its own request, whole.
 */
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import {
  HEADER_SIZE,
  Opcode,
  WIRE_MAGIC,
  WIRE_VERSION,
  WireStatus,
} from '../../services/api/wire.ts';
import { PageServerClient, PageServerError } from '../../services/client/pageserver-client.ts';

interface Request {
  opcode: number;
  id: bigint;
  addr: bigint;
  length: number;
}

/** The answer the fake server gives: READ -> `length` bytes derived from addr; WRITE -> empty. */
function answer(req: Request): Buffer {
  const status = req.addr === 0xdeadn ? WireStatus.E_OUT_OF_RANGE : WireStatus.OK;
  const payload =
    status !== WireStatus.OK || req.opcode !== Opcode.READ
      ? Buffer.alloc(0)
      : Buffer.from(Array.from({ length: req.length }, (_, i) => (Number(req.addr) + i) & 0xff));
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(WIRE_MAGIC, 0);
  h.writeUInt8(WIRE_VERSION, 4);
  h.writeUInt8(req.opcode, 5);
  h.writeBigUInt64LE(req.id, 8);
  h.writeUInt32LE(status, 16);
  h.writeUInt32LE(payload.length, 20);
  return Buffer.concat([h, payload]);
}

/** Seeded pieces, so a failure can be replayed. */
function* cuts(total: number, seed: number): Generator<number> {
  let x = seed;
  let left = total;
  while (left > 0) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    // seed 1: 1, 2, ..., 33 bytes in turn, so cuts land at every header offset.
    const n = Math.min(left, seed === 1 ? 1 + ((total - left) % 33) : 1 + (x % 9000));
    left -= n;
    yield n;
  }
}

async function fakeServer(seed: number, batch: number) {
  const server = createServer((socket: Socket) => {
    let buf = Buffer.alloc(0);
    let queued: Request[] = [];
    socket.on('data', async (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= HEADER_SIZE) {
        const length = buf.readUInt32LE(24);
        const opcode = buf.readUInt8(5);
        const body = opcode === Opcode.WRITE ? length : 0;
        if (buf.length < HEADER_SIZE + body) break;
        queued.push({ opcode, id: buf.readBigUInt64LE(8), addr: buf.readBigUInt64LE(16), length });
        buf = buf.subarray(HEADER_SIZE + body);
      }
      if (queued.length < batch) return;
      // Answer the batch in reverse order, as one stream cut into seeded pieces.
      const stream = Buffer.concat(queued.reverse().map(answer));
      queued = [];
      let off = 0;
      let pieces = 0;
      for (const n of cuts(stream.length, seed)) {
        socket.write(stream.subarray(off, off + n));
        off += n;
        // Let each few pieces leave on their own, so the client sees them as separate chunks.
        if (++pieces % 16 === 0) await new Promise((r) => setImmediate(r));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

for (const [seed, label] of [
  [1, 'one byte at a time'],
  [7, 'random pieces up to 9000 bytes'],
  [42, 'other random pieces'],
] as const) {
  t.test(`answers cut ${label}`, async (t) => {
    const sizes = [0, 1, 31, 32, 4096, 70_000, 1 << 20];
    const batch = sizes.length + 2;
    const { server, port } = await fakeServer(seed, batch);
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    const client = await PageServerClient.connect('127.0.0.1', port);
    t.teardown(() => client.close());
    for (let round = 0; round < 2; round++) {
      const reads = sizes.map((len, i) => client.read(1000 * (i + 1), len));
      const write = client.write(5, Buffer.from('payload'));
      const failed = client.read(0xdead, 8).then(
        () => null,
        (err: unknown) => err,
      );
      const got = await Promise.all(reads);
      got.forEach((bytes, i) => {
        const len = sizes[i] as number;
        t.equal(bytes.length, len, `read ${i} length`);
        const base = 1000 * (i + 1);
        t.ok(
          bytes.every((b, j) => b === ((base + j) & 0xff)),
          `read ${i} bytes belong to its own request`,
        );
      });
      await write;
      const err = await failed;
      t.ok(err instanceof PageServerError, 'an error status rejects only its own request');
      t.equal((err as PageServerError).status, WireStatus.E_OUT_OF_RANGE);
    }
  });
}
