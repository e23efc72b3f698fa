/**
 * npm run bench:failover — how long joins stop when a leader dies, against how long etcd itself
 * takes to elect, measured in the same run on a deploy/local cluster (3 control machines, each
 * its own network namespace with an etcd member and clusterd; etcd's default 100 ms heartbeat
 * and 1 s election timeout). Needs root.
 *
 * Each round SIGKILLs one leader at t0 and then, every 100 ms, starts a join (its key made before
 * t0) through a client
 * that knows every clusterd replica (at most 20 in flight, each with a fresh key):
 *  - etcd leader rounds: the member etcd reports as leader is killed. `election` is the time
 *    until the surviving members' status (polled every 20 ms) names a new leader; `join` is
 *    the time until the first join that was started after t0 succeeds.
 *  - clusterd leader rounds: the replica reporting `amalgam_controller_leader 1` is killed;
 *    `join` as above. (No etcd election happens; the reference is the etcd rounds' election.)
 * After each round the victim is restarted and the cluster is let settle (all healthy).
 *
 * Ratio `failover_vs_etcd_election` = p99 of join resumption after an etcd leader kill / p99
 * of etcd's own election time in the same rounds (lower is better; goal <= 1.5).
 * BENCH_ROUNDS (default 20) changes the number of kills of each kind.
 */
import { clusterdReady, etcdHealthy, etcdStatus, httpGet } from '../../deploy/local/cluster.ts';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import { type LocalCluster, startLocalCluster } from '../harness/netns.ts';
import { until } from '../harness/until.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
  );
}

interface Csr {
  name: string;
  csrPem: string;
}

let joinSeq = 0;
async function csrPool(n: number): Promise<Csr[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const name = `fo-${process.pid}-${joinSeq++}`;
      return { name, csrPem: (await createKeyAndCsr({ commonName: name })).csrPem };
    }),
  );
}

/**
 * From t0, a join every 100 ms (<= 20 in flight), each with a key made before t0: ms from t0
 * until the first success.
 */
async function joinResumes(
  client: AmalgamClient,
  token: string,
  pool: Csr[],
  t0: number,
): Promise<number> {
  let first = Number.POSITIVE_INFINITY;
  let inFlight = 0;
  const attempts: Promise<void>[] = [];
  for (let i = 0; i < pool.length && first === Number.POSITIVE_INFINITY; i++) {
    const csr = pool[i] as Csr;
    if (inFlight < 20) {
      inFlight++;
      attempts.push(
        client.nodes
          .join({
            token,
            name: csr.name,
            csr: csr.csrPem,
            capacity: {
              memoryBytes: 64 * MiB,
              swapBytes: 0,
              contributedBytes: 2 * MiB,
              cpus: 1,
              cpuSpeed: 1,
            },
          })
          .then(
            () => {
              first = Math.min(first, performance.now() - t0);
            },
            () => {},
          )
          .finally(() => {
            inFlight--;
          }),
      );
    }
    await sleep(100);
  }
  await Promise.all(attempts);
  if (first === Number.POSITIVE_INFINITY) throw new Error('no join succeeded within the round');
  return first;
}

async function settle(cluster: LocalCluster): Promise<void> {
  await until(
    'every etcd member healthy',
    async () => {
      const health = await Promise.all(
        cluster.control.map((m) => etcdHealthy(cluster.state, m.ip)),
      );
      return health.every(Boolean);
    },
    60_000,
  );
  await until(
    'every clusterd ready',
    async () => {
      const ready = await Promise.all(
        cluster.control.map((m) => clusterdReady(cluster.state, m.ip)),
      );
      return ready.every(Boolean);
    },
    90_000,
  );
  await sleep(1_000);
}

async function clusterdLeader(cluster: LocalCluster): Promise<string | undefined> {
  for (const m of cluster.control) {
    try {
      const r = await httpGet(`https://${m.ip}:6443/metrics`, cluster.admin.ca, 2_000);
      if (/^amalgam_controller_leader 1$/m.test(r.body)) return m.name;
    } catch {
      // not answering
    }
  }
  return undefined;
}

async function main(): Promise<void> {
  process.stderr.write(
    `bench:failover: 3 control machines in network namespaces, ${ROUNDS} rounds of each kill\n`,
  );
  const cluster = await startLocalCluster(undefined, {
    control: 3,
    workers: 0,
    timeoutMs: 180_000,
  });
  try {
    const anonymous = createClient({
      endpoints: cluster.state.controlUrls,
      ca: cluster.admin.ca,
      timeoutMs: 15_000,
    });
    const admin = cluster.client(undefined, 30_000);
    const { token } = await admin.tokens.create({
      ttlSeconds: 7200,
      description: 'bench:failover',
    });
    await settle(cluster);

    const etcdElection: number[] = [];
    const etcdJoin: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const victim = await until('an etcd leader', () => cluster.etcdLeader(), 30_000);
      const vm = cluster.control.find((m) => m.name === victim);
      const oldLeader = (await etcdStatus(cluster.state, vm?.ip ?? ''))?.leader;
      const survivors = cluster.control.filter((m) => m.name !== victim);
      const pool = await csrPool(100);
      const t0 = performance.now();
      const killed = cluster.kill(victim, 'etcd');
      const elected = (async () => {
        for (;;) {
          const views = await Promise.all(survivors.map((m) => etcdStatus(cluster.state, m.ip)));
          if (views.some((s) => s && s.leader !== oldLeader && s.leader !== '0'))
            return performance.now() - t0;
          await sleep(20);
        }
      })();
      const [election, resumed] = await Promise.all([
        elected,
        joinResumes(anonymous, token, pool, t0),
        killed,
      ]);
      etcdElection.push(election);
      etcdJoin.push(resumed);
      process.stderr.write(
        `  etcd leader ${victim} killed: elected after ${election.toFixed(0)} ms, join after ${resumed.toFixed(0)} ms\n`,
      );
      cluster.start(victim, 'etcd');
      await settle(cluster);
    }

    const clusterdJoin: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const victim = await until('a clusterd leader', () => clusterdLeader(cluster), 60_000);
      const pool = await csrPool(100);
      const t0 = performance.now();
      const killed = cluster.kill(victim, 'clusterd');
      const [resumed] = await Promise.all([joinResumes(anonymous, token, pool, t0), killed]);
      clusterdJoin.push(resumed);
      process.stderr.write(
        `  clusterd leader ${victim} killed: join after ${resumed.toFixed(0)} ms\n`,
      );
      cluster.start(victim, 'clusterd');
      await settle(cluster);
    }
    await Promise.all([anonymous.close(), admin.close()]);

    const row = (what: string, v: number[]) =>
      `${what.padEnd(44)} ${percentile(v, 50).toFixed(0).padStart(8)} ${percentile(v, 99).toFixed(0).padStart(8)} ${Math.max(
        ...v,
      )
        .toFixed(0)
        .padStart(8)}`;
    console.log(
      `\n${'ms after SIGKILL'.padEnd(44)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`,
    );
    console.log(row('etcd leader killed: etcd elects (status)', etcdElection));
    console.log(row('etcd leader killed: a join succeeds', etcdJoin));
    console.log(row('clusterd leader killed: a join succeeds', clusterdJoin));
    const p99Election = percentile(etcdElection, 99);
    const results = {
      rounds: ROUNDS,
      etcd_election_p50_ms: Math.round(percentile(etcdElection, 50)),
      etcd_election_p99_ms: Math.round(p99Election),
      join_after_etcd_leader_kill_p50_ms: Math.round(percentile(etcdJoin, 50)),
      join_after_etcd_leader_kill_p99_ms: Math.round(percentile(etcdJoin, 99)),
      join_after_clusterd_leader_kill_p50_ms: Math.round(percentile(clusterdJoin, 50)),
      join_after_clusterd_leader_kill_p99_ms: Math.round(percentile(clusterdJoin, 99)),
    };
    const ratios = {
      failover_vs_etcd_election: Number((percentile(etcdJoin, 99) / p99Election).toFixed(2)),
      clusterd_failover_vs_etcd_election: Number(
        (percentile(clusterdJoin, 99) / p99Election).toFixed(2),
      ),
    };
    console.log(JSON.stringify({ bench: 'failover', results, ratios }));
  } finally {
    cluster.destroy();
  }
}

await main();
