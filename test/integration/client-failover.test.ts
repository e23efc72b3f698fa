/**
 * The client keeps working while clusterd replicas die, through either door:
 * 3 replicas (REST and gRPC) on a 3-member etcd cluster, and per transport an
 * admin client and a node client given all 3 endpoints. Replicas are
 * SIGKILLed one at a time (kill 0; restart 0, kill 1; restart 1, kill 2).
 *
 * - While a replica dies, a loop of heartbeats and reads is running: a read
 *   must never fail (the client fails it over); a heartbeat in flight at the
 *   moment of the kill may fail only with UNAVAILABLE `sent: true` (the
 *   client does not resend a write that may have been applied), and is then
 *   resent by this test (a heartbeat is safe to repeat).
 * - After each kill, every call succeeds: heartbeats, GETs, lists, cluster
 *   info, and a token create.
 * - Every acknowledged heartbeat landed: the watch on the node's heartbeat
 *   key (itself resumed across the kills) saw at least one event per
 *   acknowledged heartbeat and at most one more per uncertain one, and the
 *   node's `lastHeartbeatAt` is the last acknowledged one's.
 */
import t, { type Test } from 'tap';
import type { NodeView, ResourceEvent } from '../../services/api/contracts.ts';
import {
  type AmalgamClient,
  ClientError,
  type ClientOptions,
  createClient,
} from '../../services/client/index.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import { type ClusterdReplicas, startClusterdReplicas } from '../harness/clusterd.ts';
import { startEtcdCluster } from '../harness/etcd-cluster.ts';

const GiB = 1024 ** 3;
const ROUNDS = 5;
const LOAD = { load1: 0.5, load5: 0.4, load15: 0.3, memoryUsedBytes: GiB, processes: 42 };

type Door = 'rest' | 'grpc';

interface Subject {
  door: Door;
  admin: AmalgamClient;
  node: AmalgamClient;
  name: string;
  events: ResourceEvent[];
  /** Heartbeats acknowledged, and those that failed with `sent: true` (maybe applied). */
  acked: number;
  uncertain: number;
  last: NodeView | undefined;
}

function optionsFor(cd: ClusterdReplicas, door: Door): ClientOptions {
  return door === 'rest'
    ? { transport: 'rest', endpoints: cd.urls, ca: cd.admin.ca, timeoutMs: 10_000 }
    : { transport: 'grpc', endpoints: cd.grpcUrls, ca: cd.admin.ca, timeoutMs: 10_000 };
}

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function subject(t: Test, cd: ClusterdReplicas, door: Door): Promise<Subject> {
  const base = optionsFor(cd, door);
  const admin = createClient({ ...base, cert: cd.admin.cert, key: cd.admin.key });
  t.teardown(() => admin.close());
  const name = `node-${door}`;
  const { token } = await admin.tokens.create({ description: `failover ${door}` });
  const { csrPem, keyPem } = await createKeyAndCsr({ commonName: name });
  const anonymous = createClient(base);
  const joined = await anonymous.nodes.join({
    token,
    name,
    csr: csrPem,
    capacity: { memoryBytes: 4 * GiB, swapBytes: 0, contributedBytes: GiB, cpus: 2, cpuSpeed: 100 },
  });
  await anonymous.close();
  t.equal(joined.node.name, name, `${door}: joined`);
  t.equal(joined.node.lastHeartbeatAt, null, `${door}: no heartbeat yet (null, as REST says)`);
  const node = createClient({ ...base, cert: joined.certificate, key: keyPem });
  t.teardown(() => node.close());

  const s: Subject = {
    door,
    admin,
    node,
    name,
    events: [],
    acked: 0,
    uncertain: 0,
    last: undefined,
  };
  const watch = admin.watch({ prefix: `heartbeats/${name}`, retryForMs: 60_000 });
  t.teardown(() => watch.close());
  const reading = (async () => {
    for await (const event of watch) s.events.push(event);
  })();
  reading.catch((err) => t.fail(`${door}: the heartbeat watch ended: ${err}`));
  // The watch starts "from now": wait until it sees a heartbeat, then count from there.
  const first = await node.nodes.heartbeat(name, LOAD);
  await until(`${door}: the watch to start`, () => s.events.length > 0).catch(async () => {
    // The first heartbeat may have come before the watch was established: send more.
    for (let i = 0; i < 20 && s.events.length === 0; i++) {
      await node.nodes.heartbeat(name, LOAD);
      await new Promise((r) => setTimeout(r, 250));
    }
  });
  t.ok(first.lastHeartbeatAt, `${door}: the heartbeat is recorded`);
  s.events.length = 0;
  return s;
}

/** A heartbeat; `inFlight` tolerates (and counts) a failure after it was sent. */
async function heartbeat(t: Test, s: Subject, inFlight: boolean): Promise<void> {
  try {
    s.last = await s.node.nodes.heartbeat(s.name, LOAD);
    s.acked++;
  } catch (err) {
    if (inFlight && err instanceof ClientError && err.details.sent === true) {
      s.uncertain++;
      return heartbeat(t, s, false);
    }
    t.fail(`${s.door}: heartbeat failed: ${err}`);
  }
}

async function reads(t: Test, s: Subject): Promise<void> {
  try {
    const got = await s.node.nodes.get(s.name);
    t.equal(got.name, s.name);
    const listed = await s.admin.nodes.list();
    t.ok(
      listed.some((n) => n.name === s.name),
      `${s.door}: listed`,
    );
    const info = await s.admin.cluster.info();
    t.equal(info.store, 'etcd');
    const layout = await s.admin.memory.layout();
    t.ok(layout.layout.ranges.length >= 2, `${s.door}: layout has both nodes`);
  } catch (err) {
    t.fail(`${s.door}: a read failed: ${err}`);
  }
}

/** Heartbeats and reads until `stop` says so (while a replica is being killed). */
async function busy(t: Test, s: Subject, stop: () => boolean): Promise<void> {
  while (!stop()) {
    await heartbeat(t, s, true);
    await reads(t, s);
  }
}

/** After a kill: every call succeeds, a token create included. */
async function work(t: Test, s: Subject, phase: string): Promise<void> {
  for (let i = 0; i < ROUNDS; i++) {
    await heartbeat(t, s, false);
    await reads(t, s);
  }
  try {
    const created = await s.admin.tokens.create({ description: `${s.door} ${phase}` });
    t.match(created.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/, `${s.door}: token created ${phase}`);
  } catch (err) {
    t.fail(`${s.door}: token create ${phase} failed: ${err}`);
  }
}

t.test('REST and gRPC clients survive replicas SIGKILLed one at a time', async (t) => {
  const etcd = await startEtcdCluster({ size: 3 });
  t.teardown(() => etcd.destroy());
  const cd = await startClusterdReplicas({
    count: 3,
    store: etcd.storeConfig(),
    grpc: true,
  });
  t.teardown(() => cd.destroy());
  t.equal(cd.grpcUrls.length, 3);

  const subjects = [await subject(t, cd, 'rest'), await subject(t, cd, 'grpc')];

  for (const [victim, restore] of [
    [0, undefined],
    [1, 0],
    [2, 1],
  ] as const) {
    const phase = `with replica ${victim} killed`;
    if (restore !== undefined) await cd.restart(restore);
    let stopped = false;
    const loops = subjects.map((s) => busy(t, s, () => stopped));
    await new Promise((r) => setTimeout(r, 200));
    await cd.kill(victim);
    await new Promise((r) => setTimeout(r, 200));
    stopped = true;
    await Promise.all(loops);
    await Promise.all(subjects.map((s) => work(t, s, phase)));
  }

  for (const s of subjects) {
    // A heartbeat key may also expire with its lease (a delete) when the machine is
    // slow enough for a beat to come later than the grace: only puts are heartbeats.
    const puts = () => s.events.filter((e) => e.type === 'put');
    await until(
      `${s.door}: every acknowledged heartbeat in the watch`,
      () => puts().length >= s.acked,
    ).catch((err) => t.fail(String(err)));
    await new Promise((r) => setTimeout(r, 500));
    t.ok(
      puts().length >= s.acked && puts().length <= s.acked + s.uncertain,
      `${s.door}: ${puts().length} heartbeat events for ${s.acked} acknowledged + ${s.uncertain} uncertain`,
    );
    t.ok(
      s.events.every((e) => e.key === `heartbeats/${s.name}`),
      `${s.door}: only this node's heartbeats`,
    );
    const revisions = s.events.map((e) => e.revision);
    t.same(
      revisions,
      [...new Set(revisions)].sort((a, b) => a - b),
      `${s.door}: no duplicate, in order`,
    );
    const now = await s.admin.nodes.get(s.name);
    if (s.uncertain === 0) {
      t.equal(
        now.lastHeartbeatAt,
        s.last?.lastHeartbeatAt,
        `${s.door}: the last heartbeat is the node's`,
      );
    }
    t.ok(now.lastHeartbeatAt !== null, `${s.door}: lastHeartbeatAt set`);
  }
});
