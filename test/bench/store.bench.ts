/**
 * npm run bench:store — durable single-key txn throughput and latency of the
 * embedded store, the etcd backend on a 3-member cluster, and raw etcd3 txns
 * on the same cluster (the ceiling), at 1 and 64 concurrent clients.
 *
 * Every configuration runs the same operation: a compare-and-swap txn on the
 * client's own key (`if version(k) >= 0 then put k`), acknowledged only once
 * durable (etcd: committed by a quorum and fsynced; embedded: fsynced WAL).
 * Rounds alternate between systems so machine noise hits all of them alike;
 * the best round of each is reported.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { openEmbeddedStore } from '../../services/store/embedded-store.ts';
import { EtcdStore } from '../../services/store/etcd-store.ts';
import type { Store } from '../../services/store/store.ts';
import { startEtcdCluster } from '../harness/etcd-cluster.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = [1, 64];

type TxnFn = (client: number, i: number) => Promise<unknown>;
interface Measured {
  opsPerSec: number;
  p50: number;
  p99: number;
  ops: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function measure(fn: TxnFn, concurrency: number): Promise<Measured> {
  const latencies: number[] = [];
  const endAt = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      for (let i = 0; performance.now() < endAt; i++) {
        const t0 = performance.now();
        await fn(client, i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    opsPerSec: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    ops: latencies.length,
  };
}

function storeTxn(store: Store, prefix: string): TxnFn {
  return (client, i) => {
    const key = `${prefix}/${client}`;
    return store.txn({
      compares: [{ key, target: 'version', op: '>', value: -1 }],
      onSuccess: [{ type: 'put', key, value: String(i) }],
    });
  };
}

function rawTxn(raw: Etcd3, prefix: string): TxnFn {
  return (client, i) => {
    const key = Buffer.from(`${prefix}/${client}`);
    return raw.kv.txn({
      compare: [{ key, target: 'Version', result: 'Greater', version: -1 }],
      success: [{ request_put: { key, value: Buffer.from(String(i)) } }],
    });
  };
}

async function main(): Promise<void> {
  process.stderr.write('starting a 3-member etcd cluster ...\n');
  const cluster = await startEtcdCluster({ size: 3 });
  const dataDir = await mkdtemp(join(tmpdir(), 'amalgam-bench-embedded-'));
  const raw = new Etcd3({
    hosts: cluster.endpoints(),
    ...(cluster.tls ? { credentials: cluster.tls.credentials } : {}),
  });
  const etcdStore = new EtcdStore(cluster.storeOptions());
  const embedded = await openEmbeddedStore({ dataDir });
  try {
    const systems = {
      raw_etcd3: rawTxn(raw, '/bench/raw'),
      etcd_backend: storeTxn(etcdStore, '/bench/backend'),
      embedded: storeTxn(embedded, '/bench/embedded'),
    };
    const best: Record<string, Measured> = {};
    for (const concurrency of CONCURRENCY) {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [name, fn] of Object.entries(systems)) {
          await measure(fn, concurrency).then((m) => {
            const id = `${name}@${concurrency}`;
            process.stderr.write(`  round ${round} ${id}: ${m.opsPerSec.toFixed(0)} txn/s\n`);
            const prev = best[id];
            if (!prev || m.opsPerSec > prev.opsPerSec) best[id] = m;
          });
        }
      }
    }

    const rows = Object.entries(best).map(([id, m]) => ({
      system: id.split('@')[0],
      clients: id.split('@')[1],
      'txn/s': m.opsPerSec.toFixed(0),
      'p50 ms': m.p50.toFixed(2),
      'p99 ms': m.p99.toFixed(2),
      ops: m.ops,
    }));
    console.log(
      `\nstore bench: best of ${ROUNDS} rounds of ${SECONDS}s each, 3-member etcd on loopback`,
    );
    console.table(rows);
    const at64 = (name: string) => best[`${name}@64`]?.opsPerSec ?? Number.NaN;
    const ratios = {
      etcd_backend_vs_raw: round2(at64('etcd_backend') / at64('raw_etcd3')),
      embedded_vs_raw_etcd3: round2(at64('embedded') / at64('raw_etcd3')),
    };
    console.log(
      `goals: etcd_backend_vs_raw >= 0.9 -> ${ratios.etcd_backend_vs_raw}; embedded_vs_raw_etcd3 >= 1 -> ${ratios.embedded_vs_raw_etcd3}`,
    );
    const results: Record<string, number> = {};
    for (const [id, m] of Object.entries(best)) {
      const key = id.replace('@', '_c');
      results[`${key}_txn_per_s`] = Math.round(m.opsPerSec);
      results[`${key}_p50_ms`] = round2(m.p50);
      results[`${key}_p99_ms`] = round2(m.p99);
    }
    console.log(JSON.stringify({ bench: 'store', results, ratios }));
  } finally {
    await embedded.close();
    await etcdStore.close();
    raw.close();
    await cluster.destroy();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

await main();
