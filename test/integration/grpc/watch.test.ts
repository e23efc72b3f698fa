/**
 * The gRPC Watch stream, health checking and reflection over a real socket:
 * a stream sees joins and heartbeats in revision order; cancelling the call
 * closes the store watch; a compacted from_revision ends the stream with
 * OUT_OF_RANGE and `amalgam-code: WATCH_COMPACTED`; Health/Check says
 * SERVING; reflection lists amalgam.v1.Nodes.
 */
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import type {
  ControlPlaneRuntime,
  ResourceWatch,
} from '../../../services/controlplane/service/contracts.ts';
import { createKeyAndCsr } from '../../../services/pki/index.ts';
import { codeOf, type GrpcHarness, startGrpcHarness } from './grpc-harness.ts';

const GiB = 1024 ** 3;
const ADMIN = { kind: 'admin' } as const;

interface Event {
  type: string;
  key: string;
  valueJson: string;
  revision: number;
}

async function join(runtime: ControlPlaneRuntime, name: string): Promise<void> {
  const { token } = await runtime.tokens.create(ADMIN, {});
  const { csrPem } = await createKeyAndCsr({ commonName: name });
  await runtime.nodes.join({
    token,
    name,
    csr: csrPem,
    capacity: { memoryBytes: GiB, swapBytes: 0, contributedBytes: GiB, cpus: 1, cpuSpeed: 1 },
  });
}

const LOAD = { load1: 0, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 1 };

/** Reads `count` events from a stream (rejects on a stream error). */
function take(stream: grpc.ClientReadableStream<Event>, count: number): Promise<Event[]> {
  const events: Event[] = [];
  return new Promise((resolve, reject) => {
    const onData = (event: Event) => {
      events.push(event);
      if (events.length === count) {
        stream.off('data', onData);
        resolve(events);
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

function watchStream(h: GrpcHarness, request: Record<string, unknown>) {
  return h.rawClient('Watch', h.pki.admin).Watch(request) as grpc.ClientReadableStream<Event>;
}

t.test('a Watch stream sees joins and heartbeats in revision order', async (t) => {
  const h = await startGrpcHarness(t);
  const nodes = watchStream(h, { prefix: 'nodes/', fromRevision: 1 });
  const heartbeats = watchStream(h, { prefix: 'heartbeats/', fromRevision: 1 });
  nodes.on('error', () => {});
  heartbeats.on('error', () => {});
  await join(h.runtime, 'node-a');
  await join(h.runtime, 'node-b');
  await h.runtime.nodes.heartbeat({ kind: 'node', name: 'node-a' }, 'node-a', LOAD);
  await h.runtime.nodes.heartbeat({ kind: 'node', name: 'node-b' }, 'node-b', LOAD);

  const joins = await take(nodes, 2);
  t.same(
    joins.map((e) => [e.type, e.key, JSON.parse(e.valueJson).name]),
    [
      ['put', 'nodes/node-a', 'node-a'],
      ['put', 'nodes/node-b', 'node-b'],
    ],
  );
  const beats = await take(heartbeats, 2);
  t.same(
    beats.map((e) => [e.type, e.key]),
    [
      ['put', 'heartbeats/node-a'],
      ['put', 'heartbeats/node-b'],
    ],
  );
  t.match(
    beats.map((e) => JSON.parse(e.valueJson)),
    [
      { name: 'node-a', lastHeartbeatAt: String, load: LOAD, pageserver: null },
      { name: 'node-b', lastHeartbeatAt: String, load: LOAD, pageserver: null },
    ],
    'a heartbeat event carries the NodeLiveness',
  );
  const revisions = [...joins, ...beats].map((e) => e.revision);
  t.ok(
    revisions.every((r, i) => i === 0 || r > (revisions[i - 1] as number)),
    `revisions increase: ${revisions}`,
  );
  nodes.cancel();
  heartbeats.cancel();
});

t.test('cancelling the call closes the store watch', async (t) => {
  const h = await startGrpcHarness(t);
  let opened = 0;
  let closed = 0;
  const open = h.runtime.watch.open.bind(h.runtime.watch);
  h.runtime.watch.open = (caller, request) => {
    const watch = open(caller, request);
    opened++;
    const close = watch.close.bind(watch);
    return {
      [Symbol.asyncIterator]: () => watch[Symbol.asyncIterator](),
      close: () => {
        closed++;
        return close();
      },
    } satisfies ResourceWatch;
  };
  const stream = watchStream(h, { prefix: 'nodes/', fromRevision: 1 });
  const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
  await join(h.runtime, 'node-a');
  await take(stream, 1);
  t.equal(opened, 1, 'one store watch');
  t.equal(closed, 0, 'still open while the client listens');
  stream.cancel();
  t.equal((await ended).code, grpc.status.CANCELLED);
  for (let i = 0; i < 100 && closed === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.ok(closed >= 1, 'the store watch was closed');
});

t.test('a compacted from_revision ends the stream with WATCH_COMPACTED', async (t) => {
  const h = await startGrpcHarness(t);
  await join(h.runtime, 'node-a');
  await h.runtime.nodes.heartbeat({ kind: 'node', name: 'node-a' }, 'node-a', LOAD);
  await h.store.compact(await h.store.revision());
  const stream = watchStream(h, { prefix: 'nodes/', fromRevision: 1 });
  const err = await new Promise<grpc.ServiceError>((resolve) => {
    stream.on('error', resolve);
    stream.on('data', () => {});
  });
  t.equal(err.code, grpc.status.OUT_OF_RANGE);
  t.equal(codeOf(err), 'WATCH_COMPACTED');
});

t.test('anonymous Watch is UNAUTHENTICATED', async (t) => {
  const h = await startGrpcHarness(t);
  const stream = h.rawClient('Watch', undefined).Watch({
    prefix: 'nodes/',
  }) as grpc.ClientReadableStream<Event>;
  const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
  t.equal(err.code, grpc.status.UNAUTHENTICATED);
  t.equal(codeOf(err), 'UNAUTHENTICATED');
});

t.test('health Check says SERVING; reflection lists amalgam.v1.Nodes', async (t) => {
  const h = await startGrpcHarness(t);
  const health = h.rpc('grpc.health.v1.Health', h.pki.admin);
  t.same(await health('Check', { service: '' }), { status: 'SERVING' });
  t.same(await health('Check', { service: 'amalgam.v1.Nodes' }), { status: 'SERVING' });
  const unknown = await health('Check', { service: 'nope' }).catch((e) => e as grpc.ServiceError);
  t.equal((unknown as grpc.ServiceError).code, grpc.status.NOT_FOUND);

  const reflection = h.rawClient('grpc.reflection.v1.ServerReflection', h.pki.admin);
  const call = reflection.ServerReflectionInfo() as grpc.ClientDuplexStream<
    Record<string, unknown>,
    { listServicesResponse?: { service: { name: string }[] } }
  >;
  const answer = new Promise<{ name: string }[]>((resolve, reject) => {
    call.on('data', (msg) => resolve(msg.listServicesResponse?.service ?? []));
    call.on('error', reject);
  });
  call.write({ listServices: '' });
  const services = (await answer).map((s) => s.name);
  call.end();
  t.ok(services.includes('amalgam.v1.Nodes'), `listed: ${services.join(', ')}`);
});
