import { spawnSync } from 'node:child_process';
import { open, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { openEmbeddedStore } from '../../../services/store/embedded-store.ts';
import { put, type WatchEvent } from '../../../services/store/store.ts';
import type { StoreLogger } from '../../../services/store/wal.ts';

const quiet: StoreLogger = { warn: () => undefined, error: () => undefined };

async function take(watch: AsyncIterable<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for await (const event of watch) {
    out.push(event);
    if (out.length === n) break;
  }
  return out;
}

type Method = (this: unknown, ...args: unknown[]) => Promise<unknown>;

/** Replaces a FileHandle method for one test (all FileHandles share one prototype). */
async function patchFileHandle(
  t: Test,
  dir: string,
  name: 'datasync' | 'write',
  replacement: (original: () => Promise<unknown>) => Promise<unknown>,
): Promise<void> {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as Record<string, Method>;
  await probe.close();
  const original = proto[name] as Method;
  proto[name] = function (this: unknown, ...args: unknown[]) {
    return replacement(() => original.apply(this, args));
  };
  t.teardown(() => {
    proto[name] = original;
  });
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

t.test('state, history and request ids survive a restart', async (t) => {
  const dataDir = t.testdir();
  const first = await openEmbeddedStore({ dataDir, logger: quiet });
  const r1 = await put(first, 'a', '1');
  await put(first, 'a', '2');
  await put(first, 'b', '1');
  await first.txn({ compares: [], onSuccess: [{ type: 'delete', key: 'b' }] });
  const once = {
    requestId: 'survives-restart',
    compares: [{ key: 'c', target: 'version' as const, op: '==' as const, value: 0 }],
    onSuccess: [{ type: 'put' as const, key: 'c', value: 'x' }],
  };
  const outcome = await first.txn(once);
  const revision = await first.revision();
  await first.close();

  const second = await openEmbeddedStore({ dataDir, logger: quiet });
  t.teardown(() => second.close());
  t.equal(await second.revision(), revision);
  t.match(await second.get('a'), { value: '2', createRevision: r1, version: 2 });
  t.equal(await second.get('b'), undefined);
  t.same(await second.txn(once), outcome, 'a resend after the restart is still recognised');
  t.same(
    (await take(second.watch('', { fromRevision: r1 }), 5)).map((e) => [e.type, e.kv.key]),
    [
      ['put', 'a'],
      ['put', 'a'],
      ['put', 'b'],
      ['delete', 'b'],
      ['put', 'c'],
    ],
    'the history is watchable after the restart',
  );
});

t.test('snapshots replace old segments, and a restart after them recovers', async (t) => {
  const dataDir = t.testdir();
  const store = await openEmbeddedStore({ dataDir, snapshotEvery: 10, logger: quiet });
  for (let i = 0; i < 95; i++) await put(store, `k${i % 20}`, String(i));
  const lease = await store.grantLease(60, { keepAlive: false });
  await put(store, 'leased', 'x', lease.id);
  await store.compact(50);
  const revision = await store.revision();
  await store.close();

  const files = await readdir(dataDir);
  t.equal(files.filter((f) => f.startsWith('snapshot-')).length, 1, 'only the newest snapshot');
  t.ok(files.filter((f) => f.startsWith('wal-')).length <= 1, 'older segments were deleted');

  const reopened = await openEmbeddedStore({ dataDir, snapshotEvery: 10, logger: quiet });
  t.teardown(() => reopened.close());
  t.equal(await reopened.revision(), revision);
  t.equal((await reopened.range('k')).kvs.length, 20);
  t.equal((await reopened.get('k14'))?.value, '94');
  t.equal((await reopened.get('leased'))?.lease, lease.id, 'leases survive');
  await t.rejects(take(reopened.watch('', { fromRevision: 49 }), 1), { code: 'WATCH_COMPACTED' });
});

t.test('a recovered lease gets a fresh TTL, then expires and deletes its keys', async (t) => {
  const dataDir = t.testdir();
  const first = await openEmbeddedStore({ dataDir, logger: quiet });
  const lease = await first.grantLease(1, { keepAlive: false });
  await put(first, 'eph', 'x', lease.id);
  await first.close();
  t.equal(((await lease.lost) as Error & { code?: string }).code, 'STORE_CLOSED');

  const second = await openEmbeddedStore({ dataDir, logger: quiet });
  t.teardown(() => second.close());
  t.equal((await second.get('eph'))?.value, 'x', 'still there right after the restart');
  const from = (await second.revision()) + 1;
  const [expired] = await take(second.watch('', { fromRevision: from }), 1);
  t.match(expired, { type: 'delete', kv: { key: 'eph' } }, 'nobody renewed it: it expired');
  await t.rejects(put(second, 'late', 'x', lease.id), { code: 'LEASE_NOT_FOUND' });
});

t.test('nothing is visible before it is durable', async (t) => {
  const dataDir = t.testdir();
  const store = await openEmbeddedStore({ dataDir, logger: quiet });
  t.teardown(() => store.close());
  await put(store, 'k', 'old');
  const watch = store.watch('k');
  const events = take(watch, 1);
  let releaseSync: () => void = () => undefined;
  const syncGate = new Promise<void>((resolve) => {
    releaseSync = resolve;
  });
  await patchFileHandle(t, dataDir, 'datasync', async (original) => {
    await original();
    await syncGate;
  });

  const settled: string[] = [];
  const write = put(store, 'k', 'new').then(() => settled.push('write'));
  const read = store.get('k').then((kv) => settled.push(`read ${kv?.value}`));
  void events.then(() => settled.push('event'));
  await turns(20);
  t.same(settled, [], 'neither the write, a read of it, nor its event before the fsync');

  releaseSync();
  await Promise.all([write, read, events]);
  t.same(settled.sort(), ['event', 'read new', 'write']);
});

t.test('a failed fsync stops the store: nothing after it is acknowledged', async (t) => {
  const dataDir = t.testdir();
  const store = await openEmbeddedStore({ dataDir, logger: quiet });
  await put(store, 'k', 'durable');
  let failing = true;
  await patchFileHandle(t, dataDir, 'write', async (original) => {
    if (failing) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    return original();
  });
  await t.rejects(put(store, 'k', 'lost'), { code: 'STORE_CLOSED' });
  await t.rejects(store.get('k'), { code: 'STORE_CLOSED' });
  await store.close();
  failing = false;

  const reopened = await openEmbeddedStore({ dataDir, logger: quiet });
  t.teardown(() => reopened.close());
  t.equal((await reopened.get('k'))?.value, 'durable', 'the acknowledged value is what remains');
});

t.test('one process per data directory; a dead owner’s lock is taken over', async (t) => {
  const dataDir = t.testdir();
  const store = await openEmbeddedStore({ dataDir, logger: quiet });
  await t.rejects(openEmbeddedStore({ dataDir, logger: quiet }), {
    code: 'DATA_DIR_LOCKED',
    details: { pid: process.pid },
  });
  await store.close();

  const exited = spawnSync(process.execPath, ['-e', '']);
  await writeFile(join(dataDir, 'LOCK'), `${exited.pid}\n`);
  const again = await openEmbeddedStore({ dataDir, logger: quiet });
  await again.close();
  t.notOk((await readdir(dataDir)).includes('LOCK'), 'close releases the lock');
});

t.test('a closed store refuses every call with STORE_CLOSED', async (t) => {
  const store = await openEmbeddedStore({ dataDir: t.testdir(), logger: quiet });
  const watch = store.watch('');
  const pending = take(watch, 1);
  await store.close();
  t.same(await pending, [], 'open watches end');
  await t.rejects(store.get('k'), { code: 'STORE_CLOSED' });
  await t.rejects(put(store, 'k', 'v'), { code: 'STORE_CLOSED' });
  await t.rejects(store.grantLease(5), { code: 'STORE_CLOSED' });
  await t.rejects(store.revision(), { code: 'STORE_CLOSED' });
  t.throws(() => store.watch(''), { code: 'STORE_CLOSED' });
  await store.close();
});

t.test('a request too large for the log is refused and applies nothing', async (t) => {
  const store = await openEmbeddedStore({ dataDir: t.testdir(), maxRecordBytes: 200 });
  t.teardown(() => store.close());
  const before = await store.revision();
  await t.rejects(put(store, 'big', 'x'.repeat(500)), { code: 'INVALID_ARGUMENT' });
  t.equal(await store.revision(), before);
  t.equal(await store.get('big'), undefined);
});
