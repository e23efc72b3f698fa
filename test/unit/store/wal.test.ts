import { appendFile, open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  encodeRecord,
  HEADER_BYTES,
  readWal,
  recoverWal,
  type StoreLogger,
  WalWriter,
} from '../../../services/store/wal.ts';

function recordingLogger(): StoreLogger & { warnings: object[] } {
  const warnings: object[] = [];
  return { warnings, warn: (details) => warnings.push(details), error: () => undefined };
}

async function writeLog(path: string, payloads: unknown[]): Promise<number[]> {
  const offsets: number[] = [];
  let offset = 0;
  const bytes = payloads.map((p) => {
    const record = encodeRecord(p);
    offsets.push(offset);
    offset += record.length;
    return record;
  });
  await writeFile(path, Buffer.concat(bytes));
  return offsets;
}

/** Patches every FileHandle's datasync (they share one prototype) for one test. */
async function patchDatasync(
  t: Test,
  dir: string,
  replacement: (original: () => Promise<void>) => Promise<void>,
): Promise<void> {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
  await probe.close();
  const original = proto.datasync;
  proto.datasync = function (this: unknown) {
    return replacement(() => original.call(this));
  };
  t.teardown(() => {
    proto.datasync = original;
  });
}

t.test('records round-trip through a writer and a reader', async (t) => {
  const path = join(t.testdir(), 'wal.log');
  const wal = new WalWriter(path, { create: true });
  const payloads = [{ op: 'a', n: 1 }, 'text with ünïcode ✓', [1, 2, 3], { nested: { x: null } }];
  for (const payload of payloads) await wal.append(encodeRecord(payload));
  await wal.close();
  const contents = await readWal(path);
  t.same(contents.payloads, payloads);
  t.equal(contents.tornBytes, 0);
  t.equal(contents.validBytes, (await stat(path)).size);

  const again = new WalWriter(path);
  await again.append(encodeRecord('appended'));
  await again.close();
  t.same((await readWal(path)).payloads, [...payloads, 'appended'], 'append mode continues');
  await t.rejects(new WalWriter(path, { create: true }).append(encodeRecord(1)), {
    code: 'EEXIST',
  });
});

t.test('a torn last record is dropped and the file cut back', async (t) => {
  const dir = t.testdir();
  const payloads = [{ i: 0 }, { i: 1 }, { i: 2, pad: 'x'.repeat(40) }];
  const lastLength = encodeRecord(payloads[2]).length;
  const cuts = [1, 3, 4, 7, HEADER_BYTES, HEADER_BYTES + 1, 20, lastLength - 1];
  for (const cut of cuts) {
    // Garbage that stops short of the declared end, and garbage that ends
    // exactly there (so the checksum fails at the end of the file).
    const fills = [Math.min(3, lastLength - cut - 1), lastLength - cut].filter(
      (n, i, all) => n > 0 && all.indexOf(n) === i,
    );
    for (const fill of fills) {
      const path = join(dir, `torn-${cut}-${fill}.log`);
      const offsets = await writeLog(path, payloads);
      const lastStart = offsets[2] as number;
      await truncate(path, lastStart + cut);
      await appendFile(path, Buffer.alloc(fill, 0xab));
      const logger = recordingLogger();
      const contents = await recoverWal(path, logger);
      t.same(contents.payloads, payloads.slice(0, 2), `cut ${cut} + ${fill} garbage bytes`);
      t.equal((await stat(path)).size, lastStart, 'file truncated to the last good record');
      t.match(logger.warnings, [{ validBytes: lastStart }], 'a warning says what was dropped');

      const wal = new WalWriter(path);
      await wal.append(encodeRecord('next'));
      await wal.close();
      t.same((await readWal(path)).payloads, [{ i: 0 }, { i: 1 }, 'next'], 'log usable again');
    }
  }
});

t.test('a zero-filled tail (pages of a crash) is a torn tail', async (t) => {
  const path = join(t.testdir(), 'zeros.log');
  const offsets = await writeLog(path, ['a', 'b']);
  const size = (await stat(path)).size;
  await appendFile(path, Buffer.alloc(4096));
  const contents = await recoverWal(path, recordingLogger());
  t.same(contents.payloads, ['a', 'b']);
  t.equal((await stat(path)).size, size);
  t.equal(offsets.length, 2);
});

t.test('damage before the last record is WAL_CORRUPT and changes nothing', async (t) => {
  const dir = t.testdir();
  const payloads = [{ i: 0 }, { i: 1, body: 'middle' }, { i: 2 }];

  const flipped = join(dir, 'flipped.log');
  const offsets = await writeLog(flipped, payloads);
  const bytes = await readFile(flipped);
  const at = (offsets[1] as number) + HEADER_BYTES + 3;
  bytes[at] = (bytes[at] as number) ^ 0x01;
  await writeFile(flipped, bytes);
  await t.rejects(recoverWal(flipped, recordingLogger()), {
    code: 'WAL_CORRUPT',
    details: { offset: offsets[1] },
  });
  t.same(await readFile(flipped), bytes, 'nothing truncated');

  const garbageThenRecord = join(dir, 'garbage-then-record.log');
  await writeFile(
    garbageThenRecord,
    Buffer.concat([encodeRecord('a'), Buffer.alloc(12, 0xab), encodeRecord('b')]),
  );
  await t.rejects(readWal(garbageThenRecord), { code: 'WAL_CORRUPT' });

  const notJson = join(dir, 'not-json.log');
  const body = Buffer.from('{not json');
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(body.length, 0);
  const { crc32 } = await import('node:zlib');
  header.writeUInt32LE(crc32(body), 4);
  await writeFile(notJson, Buffer.concat([header, body]));
  await t.rejects(readWal(notJson), { code: 'WAL_CORRUPT' }, 'a valid checksum is not a tear');
});

t.test('record size is limited on both sides', async (t) => {
  t.throws(() => encodeRecord('x'.repeat(100), 50), { code: 'INVALID_ARGUMENT' });
  const path = join(t.testdir(), 'big.log');
  await writeFile(path, Buffer.concat([encodeRecord('x'.repeat(100)), encodeRecord('y')]));
  await t.rejects(readWal(path, 50), { code: 'WAL_CORRUPT' }, 'oversized record mid-log');
  t.same((await readWal(path)).payloads, ['x'.repeat(100), 'y']);
});

t.test('group commit: one write + datasync per batch, acks only after it', async (t) => {
  const dir = t.testdir();
  let syncs = 0;
  let releaseFirst: () => void = () => undefined;
  const firstGate = new Promise<void>((resolve) => {
    releaseFirst = resolve;
  });
  let firstSyncStarted: () => void = () => undefined;
  const firstSyncing = new Promise<void>((resolve) => {
    firstSyncStarted = resolve;
  });
  await patchDatasync(t, dir, async (original) => {
    syncs++;
    await original();
    if (syncs === 1) {
      firstSyncStarted();
      await firstGate;
    }
  });
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  const path = join(dir, 'group.log');
  const wal = new WalWriter(path, { create: true });
  const settled: boolean[] = [];
  const track = (promise: Promise<void>, i: number) =>
    promise.then(() => {
      settled[i] = true;
    });

  // Appended in the same tick: one batch.
  const first = Array.from({ length: 50 }, (_, i) => track(wal.append(encodeRecord(i)), i));
  await firstSyncing;
  t.equal(syncs, 1, 'the first batch is being synced');
  // Appended while that sync is in flight: they wait and go out together.
  const second = Array.from({ length: 50 }, (_, i) =>
    track(wal.append(encodeRecord(50 + i)), 50 + i),
  );
  await turns(20);
  t.equal(settled.filter(Boolean).length, 0, 'nothing acknowledged before its datasync completes');

  releaseFirst();
  await Promise.all([...first, ...second]);
  t.equal(syncs, 2, '100 appends, 2 datasyncs');
  await wal.close();
  t.same(
    (await readWal(path)).payloads,
    Array.from({ length: 100 }, (_, i) => i),
    'in append order',
  );
});

t.test('after a failed sync every later append is refused', async (t) => {
  const dir = t.testdir();
  const failure = Object.assign(new Error('EIO: disk on fire'), { code: 'EIO' });
  await patchDatasync(t, dir, async () => {
    throw failure;
  });
  const wal = new WalWriter(join(dir, 'failing.log'), { create: true });
  await t.rejects(wal.append(encodeRecord(1)), failure);
  await t.rejects(wal.append(encodeRecord(2)), failure, 'no record acknowledged behind a hole');
  await t.rejects(wal.close(), failure);
});
