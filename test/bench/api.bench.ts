/**
 * npm run bench:api — clusterd's REST API against its peers, in one run:
 *
 * 1. Join throughput: machines joining through 3 clusterd replicas on a
 *    3-member etcd cluster, versus raw etcd3 txns on the same cluster at the
 *    same concurrency (the ceiling: a join is at least one such txn).
 * 2. GET /v1/nodes with 1,000 nodes, versus a bare fastify route over the
 *    same HTTPS + mutual TLS returning the same JSON.
 */
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import Fastify from 'fastify';
import { Pool } from 'undici';
import type { JoinRequest } from '../../services/api/contracts.ts';
import { createClient } from '../../services/client/index.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { startEtcdCluster } from '../harness/etcd-cluster.ts';

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const GET_SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 3);
const MiB = 1024 * 1024;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

interface Measured {
  perSec: number;
  p50: number;
  p99: number;
  n: number;
}

/** Runs `op` from `concurrency` loops until `count` ops are done or `seconds` pass. */
async function drive(
  op: (i: number) => Promise<unknown>,
  concurrency: number,
  limit: { count?: number; seconds?: number },
): Promise<Measured> {
  const latencies: number[] = [];
  const started = performance.now();
  const endAt = limit.seconds ? started + limit.seconds * 1000 : Number.POSITIVE_INFINITY;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if ((limit.count !== undefined && i >= limit.count) || performance.now() > endAt) return;
        const t0 = performance.now();
        await op(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    perSec: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    n: latencies.length,
  };
}

async function main(): Promise<void> {
  process.stderr.write(`starting 3 etcd members and ${REPLICAS} clusterd replicas ...\n`);
  const etcd = await startEtcdCluster({ size: 3 });
  const cd = await startClusterdReplicas({
    count: REPLICAS,
    store: etcd.storeConfig(),
    // Every machine joins from loopback: lift the per-address join limit.
    extraConfig: { logLevel: 'warn', join: { burst: 100_000, ratePerSecond: 10_000 } },
  });
  const raw = new Etcd3({
    hosts: etcd.endpoints(),
    ...(etcd.tls ? { credentials: etcd.tls.credentials } : {}),
  });
  const admin = createClient({ endpoints: cd.urls, ...cd.admin });
  try {
    const { token } = await admin.tokens.create({ ttlSeconds: 3600, description: 'bench' });
    process.stderr.write(`preparing ${NODES} machine keys and CSRs ...\n`);
    const requests: JoinRequest[] = [];
    for (let i = 0; i < NODES; i++) {
      const name = `bench-${i}`;
      const { csrPem } = await createKeyAndCsr({ commonName: name });
      const bytes = 64 * MiB;
      requests.push({
        token,
        name,
        csr: csrPem,
        capacity: {
          memoryBytes: bytes,
          swapBytes: 0,
          contributedBytes: bytes,
          cpus: 2,
          cpuSpeed: 1000,
        },
      });
    }
    const joiners = cd.urls.map((url) => createClient({ endpoints: [url], ca: cd.admin.ca }));

    process.stderr.write(`joining ${NODES} machines at concurrency ${CONCURRENCY} ...\n`);
    const joins = await drive(
      (i) =>
        (joiners[i % joiners.length] as (typeof joiners)[0]).nodes.join(requests[i] as JoinRequest),
      CONCURRENCY,
      { count: NODES },
    );
    process.stderr.write('raw etcd3 txns at the same concurrency ...\n');
    const rawTxn = await drive(
      (i) => {
        const key = Buffer.from(`/bench/raw/${i % CONCURRENCY}`);
        return raw.kv.txn({
          compare: [{ key, target: 'Version', result: 'Greater', version: -1 }],
          success: [{ request_put: { key, value: Buffer.from(String(i)) } }],
        });
      },
      CONCURRENCY,
      { seconds: GET_SECONDS },
    );

    // GET /v1/nodes versus a bare fastify route serving the same JSON over the same TLS.
    const listed = await admin.nodes.list();
    const body = { items: listed };
    const tls = { ca: cd.admin.ca, cert: cd.admin.cert, key: cd.admin.key };
    const root = cd.urls[0] as string;
    const bare = Fastify({
      https: {
        key: readFileSync(cd.tlsFiles.keyFile),
        cert: readFileSync(cd.tlsFiles.certFile),
        ca: cd.admin.ca,
        requestCert: true,
        rejectUnauthorized: false,
      },
      logger: false,
    });
    bare.get('/v1/nodes', async () => body);
    const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });
    const pool = (url: string) =>
      new Pool(url, {
        connections: 16,
        pipelining: 1,
        connect: { ...tls, rejectUnauthorized: true },
      });
    const get = (p: Pool) => async () => {
      const res = await p.request({ path: '/v1/nodes', method: 'GET' });
      const text = await res.body.text();
      if (res.statusCode !== 200)
        throw new Error(`GET /v1/nodes: ${res.statusCode} ${text.slice(0, 200)}`);
    };
    const amalgamPool = pool(root);
    const barePool = pool(bareUrl);
    const rounds: Record<'amalgam' | 'bare', Measured[]> = { amalgam: [], bare: [] };
    for (let round = 0; round < 2; round++) {
      rounds.amalgam.push(await drive(get(amalgamPool), 16, { seconds: GET_SECONDS }));
      rounds.bare.push(await drive(get(barePool), 16, { seconds: GET_SECONDS }));
    }
    const best = (ms: Measured[]) => ms.reduce((a, b) => (b.perSec > a.perSec ? b : a));
    const getAmalgam = best(rounds.amalgam);
    const getBare = best(rounds.bare);
    await Promise.all([amalgamPool.close(), barePool.close(), bare.close()]);
    await Promise.all(joiners.map((j) => j.close()));

    const bodyKiB = Buffer.byteLength(JSON.stringify(body)) / 1024;
    console.log(
      `\napi bench: ${NODES} joins through ${REPLICAS} clusterd replicas on 3-member etcd (loopback), concurrency ${CONCURRENCY}`,
    );
    console.table([
      {
        what: 'join (POST /v1/join)',
        'ops/s': joins.perSec.toFixed(0),
        'p50 ms': joins.p50.toFixed(1),
        'p99 ms': joins.p99.toFixed(1),
        n: joins.n,
      },
      {
        what: 'raw etcd3 txn',
        'ops/s': rawTxn.perSec.toFixed(0),
        'p50 ms': rawTxn.p50.toFixed(1),
        'p99 ms': rawTxn.p99.toFixed(1),
        n: rawTxn.n,
      },
      {
        what: `GET /v1/nodes (${listed.length} nodes, ${bodyKiB.toFixed(0)} KiB)`,
        'ops/s': getAmalgam.perSec.toFixed(0),
        'p50 ms': getAmalgam.p50.toFixed(1),
        'p99 ms': getAmalgam.p99.toFixed(1),
        n: getAmalgam.n,
      },
      {
        what: 'bare fastify, same JSON',
        'ops/s': getBare.perSec.toFixed(0),
        'p50 ms': getBare.p50.toFixed(1),
        'p99 ms': getBare.p99.toFixed(1),
        n: getBare.n,
      },
    ]);
    const ratios = {
      join_vs_raw_etcd_txn: round2(joins.perSec / rawTxn.perSec),
      get_nodes_vs_bare_fastify: round2(getAmalgam.perSec / getBare.perSec),
    };
    console.log(
      `goals: join_vs_raw_etcd_txn >= 0.7 -> ${ratios.join_vs_raw_etcd_txn}; get_nodes_vs_bare_fastify >= 0.6 -> ${ratios.get_nodes_vs_bare_fastify}`,
    );
    console.log(
      JSON.stringify({
        bench: 'api',
        results: {
          nodes: listed.length,
          concurrency: CONCURRENCY,
          join_per_s: Math.round(joins.perSec),
          join_p50_ms: round2(joins.p50),
          join_p99_ms: round2(joins.p99),
          raw_etcd_txn_per_s: Math.round(rawTxn.perSec),
          get_nodes_per_s: Math.round(getAmalgam.perSec),
          get_nodes_p99_ms: round2(getAmalgam.p99),
          bare_fastify_per_s: Math.round(getBare.perSec),
        },
        ratios,
      }),
    );
  } finally {
    await admin.close();
    raw.close();
    await cd.destroy();
    await etcd.destroy();
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

await main();
