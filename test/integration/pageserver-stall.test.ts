/**
 * A client that sends many requests at once and only then reads must get
 * every answer: the page server stops taking requests while 4 MiB of
 * answers wait, and must take the buffered rest once they drain, although
 * the client sends nothing more (it stalled here once).
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const BINARY = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'native',
  'build',
  'pageserver',
);
const START = 0x4000_0000n;
const MIB = 1 << 20;
const REQUESTS = 40;

function readRequest(id: number, addr: bigint, length: number): Buffer {
  const h = Buffer.alloc(32);
  h.writeUInt32LE(0x474c4d41, 0); // "AMLG"
  h.writeUInt8(1, 4); // version
  h.writeUInt8(1, 5); // READ
  h.writeUInt16LE(0, 6);
  h.writeBigUInt64LE(BigInt(id), 8);
  h.writeBigUInt64LE(addr, 16);
  h.writeUInt32LE(length, 24);
  h.writeUInt32LE(0, 28);
  return h;
}

t.test(
  '40 pipelined 1 MiB reads sent before any answer is read: all answered',
  { timeout: 60_000 },
  async (t) => {
    const child = spawn(BINARY, [
      '--plaintext-loopback',
      '--listen',
      '127.0.0.1:0',
      '--range-start',
      `0x${START.toString(16)}`,
      '--range-size',
      String(64 * MIB),
    ]);
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', (line) => {
        const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(line);
        if (m?.[1]) resolve(Number(m[1]));
        else reject(new Error(`unexpected first line: ${line}`));
      });
    });
    const socket = connect(port, '127.0.0.1');
    t.teardown(() => {
      socket.destroy();
    });
    await new Promise((r) => socket.once('connect', r));
    socket.pause(); // read nothing yet: the server's answers pile up past its high-water mark
    socket.write(
      Buffer.concat(
        Array.from({ length: REQUESTS }, (_, i) => readRequest(i, START + BigInt(i * MIB), MIB)),
      ),
    );
    await new Promise((r) => setTimeout(r, 500));
    const expected = REQUESTS * (32 + MIB);
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`stalled after ${received} of ${expected} bytes`)),
        20_000,
      );
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= expected) {
          clearTimeout(timer);
          resolve();
        }
      });
      socket.resume();
    });
    t.equal(received, expected, 'every answer arrived');
  },
);
