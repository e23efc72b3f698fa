/**
 * npm run bench:grpc — the two doors of clusterd, in one run against one
 * clusterd process (embedded store):
 *
 * 1. Heartbeats per second from one node over gRPC versus over REST, same
 *    concurrency, same mutual TLS, same service call behind both.
 * 2. Watch fan-out: 1,000 gRPC watchers on `heartbeats/`, one change, and
 *    the delay until each watcher has it (p50/p99 over several changes).
 */
import * as grpc from '@grpc/grpc-js';
import { Pool } from 'undici';
import type { LoadReport } from '../../services/api/contracts.ts';
import { loadAmalgamProto } from '../../services/api/grpc-proto.ts';
import { createClient } from '../../services/client/index.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { freePorts } from '../harness/processes.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 1000);
const CHANGES = Number(process.env.BENCH_CHANGES ?? 5);
const STREAMS_PER_CHANNEL = 100;

// biome-ignore lint/suspicious/noExplicitAny: generated from the proto at run time
type GrpcClient = grpc.Client & Record<string, any>;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function drive(op: () => Promise<unknown>, concurrency: number, seconds: number) {
  const latencies: number[] = [];
  const started = performance.now();
  const endAt = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < endAt) {
        const t0 = performance.now();
        await op();
        latencies.push(performance.now() - t0);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    perSec: latencies.length / ((performance.now() - started) / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

function unary<T>(client: GrpcClient, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + 30_000 }, (err: Error | null, res: T) =>
      err ? reject(err) : resolve(res),
    );
  });
}

async function main(): Promise<void> {
  const [grpcPort] = await freePorts(1);
  process.stderr.write('starting clusterd (embedded store) with REST and gRPC ...\n');
  const cd = await startClusterdReplicas({
    count: 1,
    store: { backend: 'embedded' },
    extraConfig: { logLevel: 'warn', grpcListen: { host: '127.0.0.1', port: grpcPort } },
  });
  const admin = createClient({ endpoints: cd.urls, ...cd.admin });
  const grpcChannels: grpc.Client[] = [];
  try {
    // One node, joined as a machine would; its certificate is the heartbeat credential.
    const { token } = await admin.tokens.create({});
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName: 'bench-node' });
    const anon = createClient({ endpoints: cd.urls, ca: cd.admin.ca });
    const joined = await anon.nodes.join({
      token,
      name: 'bench-node',
      csr: csrPem,
      capacity: {
        memoryBytes: 1 << 30,
        swapBytes: 0,
        contributedBytes: 1 << 30,
        cpus: 2,
        cpuSpeed: 1000,
      },
    });
    await anon.close();
    const node = { ca: cd.admin.ca, cert: joined.certificate, key: keyPem };
    const load: LoadReport = {
      load1: 0.5,
      load5: 0.4,
      load15: 0.3,
      memoryUsedBytes: 1 << 20,
      processes: 42,
    };

    // --- heartbeats, REST
    const pool = new Pool(cd.urls[0] as string, {
      connections: 8,
      connect: { ...node, rejectUnauthorized: true },
    });
    const restBeat = async () => {
      const res = await pool.request({
        path: '/v1/nodes/bench-node/heartbeat',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(load),
      });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`REST heartbeat: ${res.statusCode}`);
    };
    // --- heartbeats, gRPC
    const proto = grpc.loadPackageDefinition(loadAmalgamProto()) as unknown as {
      amalgam: { v1: Record<string, grpc.ServiceClientConstructor> };
    };
    const v1 = proto.amalgam.v1;
    const nodeCreds = grpc.credentials.createSsl(
      Buffer.from(node.ca),
      Buffer.from(node.key),
      Buffer.from(node.cert),
    );
    const target = `127.0.0.1:${grpcPort}`;
    const newChannel = (Service: grpc.ServiceClientConstructor) => {
      const c = new Service(target, nodeCreds, {
        'grpc.use_local_subchannel_pool': 1,
      }) as GrpcClient;
      grpcChannels.push(c);
      return c;
    };
    const nodes = newChannel(v1.Nodes as grpc.ServiceClientConstructor);
    const grpcBeat = () => unary(nodes, 'Heartbeat', { name: 'bench-node', load });

    await restBeat();
    await grpcBeat();
    const rounds = {
      rest: [] as Awaited<ReturnType<typeof drive>>[],
      grpc: [] as Awaited<ReturnType<typeof drive>>[],
    };
    for (let round = 0; round < 2; round++) {
      process.stderr.write(`heartbeats round ${round + 1} ...\n`);
      rounds.rest.push(await drive(restBeat, CONCURRENCY, SECONDS));
      rounds.grpc.push(await drive(grpcBeat, CONCURRENCY, SECONDS));
    }
    await pool.close();
    const best = (xs: Awaited<ReturnType<typeof drive>>[]) =>
      xs.reduce((a, b) => (b.perSec > a.perSec ? b : a));
    const rest = best(rounds.rest);
    const grpcBest = best(rounds.grpc);

    // --- watch fan-out
    process.stderr.write(`opening ${WATCHERS} gRPC watchers ...\n`);
    const waiting: ((at: number, revision: number) => void)[] = [];
    const streams: grpc.ClientReadableStream<{ revision: number }>[] = [];
    let channel: GrpcClient | undefined;
    for (let i = 0; i < WATCHERS; i++) {
      if (i % STREAMS_PER_CHANNEL === 0)
        channel = newChannel(v1.Watch as grpc.ServiceClientConstructor);
      const stream = (channel as GrpcClient).Watch({
        prefix: 'heartbeats/',
      }) as grpc.ClientReadableStream<{
        revision: number;
      }>;
      const index = i;
      stream.on('data', (ev) => waiting[index]?.(performance.now(), ev.revision));
      stream.on('error', () => {});
      streams.push(stream);
    }
    await new Promise((r) => setTimeout(r, 2000)); // every stream registered with the store
    const delays: number[] = [];
    let missed = 0;
    for (let change = 0; change < CHANGES; change++) {
      const arrivals = Array.from(
        { length: WATCHERS },
        (_, i) =>
          new Promise<number | undefined>((resolve) => {
            const timer = setTimeout(() => resolve(undefined), 10_000);
            waiting[i] = (at) => {
              clearTimeout(timer);
              waiting[i] = () => {};
              resolve(at);
            };
          }),
      );
      const sentAt = performance.now();
      await grpcBeat();
      for (const at of await Promise.all(arrivals)) {
        if (at === undefined) missed++;
        else delays.push(at - sentAt);
      }
    }
    for (const s of streams) s.cancel();
    delays.sort((a, b) => a - b);
    const fanout = {
      p50: percentile(delays, 50),
      p99: percentile(delays, 99),
      max: delays.at(-1) ?? Number.NaN,
    };

    console.log(
      `\ngrpc bench: one clusterd (embedded store), one node, ${CONCURRENCY} concurrent heartbeats`,
    );
    console.table([
      {
        what: 'heartbeat over REST (HTTPS, mTLS)',
        'calls/s': rest.perSec.toFixed(0),
        'p50 ms': rest.p50.toFixed(2),
        'p99 ms': rest.p99.toFixed(2),
      },
      {
        what: 'heartbeat over gRPC (mTLS)',
        'calls/s': grpcBest.perSec.toFixed(0),
        'p50 ms': grpcBest.p50.toFixed(2),
        'p99 ms': grpcBest.p99.toFixed(2),
      },
      {
        what: `watch fan-out: ${WATCHERS} watchers x ${CHANGES} changes`,
        'calls/s': '',
        'p50 ms': fanout.p50.toFixed(1),
        'p99 ms': fanout.p99.toFixed(1),
      },
    ]);
    const ratios = { grpc_vs_rest_heartbeat: round2(grpcBest.perSec / rest.perSec) };
    console.log(
      `goal: grpc_vs_rest_heartbeat >= 1.5 -> ${ratios.grpc_vs_rest_heartbeat}; deliveries missed: ${missed}`,
    );
    console.log(
      JSON.stringify({
        bench: 'grpc',
        results: {
          rest_heartbeat_per_s: Math.round(rest.perSec),
          grpc_heartbeat_per_s: Math.round(grpcBest.perSec),
          rest_heartbeat_p99_ms: round2(rest.p99),
          grpc_heartbeat_p99_ms: round2(grpcBest.p99),
          watchers: WATCHERS,
          watch_fanout_p50_ms: round2(fanout.p50),
          watch_fanout_p99_ms: round2(fanout.p99),
          watch_fanout_missed: missed,
        },
        ratios,
      }),
    );
  } finally {
    for (const c of grpcChannels) c.close();
    await admin.close();
    await cd.destroy();
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

await main();
