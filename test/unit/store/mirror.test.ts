import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openEmbeddedStore } from '../../../services/store/embedded-store.ts';
import { openMirror } from '../../../services/store/mirror.ts';
import { put } from '../../../services/store/store.ts';

const dir = await mkdtemp(join(tmpdir(), 'amalgam-mirror-'));
const store = await openEmbeddedStore({ dataDir: dir });
t.teardown(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

t.test('after sync() the mirror holds every write acknowledged before it', async (t) => {
  await put(store, '/m/a/1', 'before');
  const mirror = await openMirror(store, '/m/');
  t.teardown(() => mirror.close());
  t.equal(mirror.get('/m/a/1')?.value, 'before', 'loaded at open');
  for (let i = 0; i < 50; i++) {
    await put(store, `/m/a/${i}`, `v${i}`);
    await mirror.sync();
    t.equal(mirror.get(`/m/a/${i}`)?.value, `v${i}`, `write ${i} visible right after sync`);
  }
  await store.txn({ compares: [], onSuccess: [{ type: 'delete', key: '/m/a/', prefix: true }] });
  await mirror.sync();
  t.same(mirror.range('/m/a/'), [], 'deletes are mirrored');
});

t.test('range is in key order; generation moves only on change', async (t) => {
  const mirror = await openMirror(store, '/n/');
  t.teardown(() => mirror.close());
  for (const k of ['c', 'a', 'b']) await put(store, `/n/${k}`, k);
  await mirror.sync();
  t.same(
    mirror.range('/n/').map((kv) => kv.value),
    ['a', 'b', 'c'],
  );
  const g = mirror.generation;
  await mirror.sync();
  t.equal(mirror.generation, g, 'no change, same generation');
  await put(store, '/n/d', 'd');
  await mirror.sync();
  t.ok(mirror.generation > g, 'a change moves it');
});

t.test('revisions made outside the prefix never stall a read', async (t) => {
  const mirror = await openMirror(store, '/p/', { catchUpMs: 20 });
  t.teardown(() => mirror.close());
  await put(store, '/elsewhere/x', '1'); // bumps the revision, no event under /p/
  await put(store, '/p/y', 'seen');
  await put(store, '/elsewhere/z', '2');
  const revision = await mirror.sync();
  t.equal(revision, await store.revision(), 'the mirror reloads up to the current revision');
  t.equal(mirror.get('/p/y')?.value, 'seen');
  await put(store, '/p/after-reload', 'yes');
  await mirror.sync();
  t.equal(mirror.get('/p/after-reload')?.value, 'yes', 'and keeps following the watch');
});
