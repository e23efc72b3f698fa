/**
 * Nothing acknowledged is ever lost: a child process writes to the embedded
 * store as fast as it can and is SIGKILLed at a random moment; every write it
 * reported acknowledged must be in the store when it is reopened. Twenty
 * rounds on one data directory, with snapshots every 500 records, so recovery
 * also starts from snapshots taken mid-run, after torn tails and stale locks.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { openEmbeddedStore } from '../../services/store/embedded-store.ts';
import type { Store } from '../../services/store/store.ts';

const ROUNDS = 20;
const WRITERS = 16;
const SNAPSHOT_EVERY = 500;
const tsLoader = fileURLToPath(new URL('../../scripts/ts-loader.mjs', import.meta.url));
const writerScript = fileURLToPath(new URL('./fixtures/embedded-writer.ts', import.meta.url));

interface Round {
  /** key -> value of every write the child reported acknowledged. */
  acknowledged: Map<string, string>;
  signal: NodeJS.Signals | null;
  killAfterMs: number;
  stderr: string;
}

/** Runs the writer until `killAfterMs` after its first acknowledgement, then SIGKILLs it. */
function runWriter(dataDir: string, tag: string, killAfterMs: number): Promise<Round> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', tsLoader, writerScript, dataDir, tag, String(WRITERS), String(SNAPSHOT_EVERY)],
    // Without tap's coverage hooks: they have nothing to report from a SIGKILL.
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
  );
  const round: Round = { acknowledged: new Map(), signal: null, killAfterMs, stderr: '' };
  let pending = '';
  let killTimer: NodeJS.Timeout | undefined;
  // A writer that never acknowledges anything is a failure, not a hang.
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? ''; // a line cut by the kill is not an acknowledgement
    for (const line of lines) {
      const [key, value] = line.split(' ');
      if (key && value) round.acknowledged.set(key, value);
    }
    killTimer ??= setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    round.stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(watchdog);
      clearTimeout(killTimer);
      round.signal = signal;
      resolve(round);
    });
  });
}

/** Every key the store holds under the writers' tags. */
async function readAll(store: Store): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  let after: string | undefined;
  for (;;) {
    const page = await store.range(
      'r',
      after === undefined ? { limit: 1000 } : { limit: 1000, after },
    );
    for (const kv of page.kvs) all.set(kv.key, kv.value);
    if (!page.more) return all;
    after = page.kvs.at(-1)?.key;
  }
}

t.test(`acknowledged writes survive SIGKILL, ${ROUNDS} rounds`, async (t) => {
  const dataDir = t.testdir();
  const acknowledged = new Map<string, string>();
  for (let round = 0; round < ROUNDS; round++) {
    const killAfterMs = 10 + Math.floor(Math.random() * 291);
    const result = await runWriter(dataDir, `r${String(round).padStart(2, '0')}`, killAfterMs);
    const label = `round ${round}, killed ${killAfterMs} ms after the first ack`;
    t.equal(result.signal, 'SIGKILL', `${label}: the writer ran until killed`, {
      stderr: result.stderr,
    });
    t.ok(result.acknowledged.size > 0, `${label}: ${result.acknowledged.size} writes acknowledged`);
    for (const [key, value] of result.acknowledged) acknowledged.set(key, value);

    const store = await openEmbeddedStore({ dataDir, snapshotEvery: SNAPSHOT_EVERY });
    try {
      const stored = await readAll(store);
      const lost = [...acknowledged].filter(([key, value]) => stored.get(key) !== value);
      t.same(
        lost.slice(0, 10),
        [],
        `${label}: every acknowledged write is there (${lost.length} lost)`,
      );
      // Writes the child made but never reported may or may not have made it;
      // whatever did must be exactly what was written.
      const garbled = [...stored].filter(([key, value]) => !value.startsWith(`${key}=`));
      t.same(garbled, [], `${label}: nothing else is garbled`);
    } finally {
      await store.close();
    }
  }
  const files = await readdir(dataDir);
  t.ok(
    files.some((f) => f.startsWith('snapshot-')),
    `snapshots were taken, so later rounds recovered from one (${acknowledged.size} writes in all)`,
  );
});
