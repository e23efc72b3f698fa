/**
 * GET /v1/watch over a real listening app on 127.0.0.1 (a stream cannot be
 * injected): NDJSON events in revision order with relative keys, the problem
 * answers before the stream (400, 401, 410), and a client that leaves closes
 * the store's watch.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import type { ResourceEvent } from '../../services/api/contracts.ts';
import { createControlPlane } from '../../services/controlplane/control-plane.ts';
import { buildApp } from '../../services/controlplane/rest/app.ts';
import { createClusterCa, createKeyAndCsr } from '../../services/pki/index.ts';
import { openEmbeddedStore } from '../../services/store/embedded-store.ts';
import type { Store, Watch } from '../../services/store/store.ts';
import { callerFromHeader, GiB, logger } from '../unit/controlplane/rest/rest-harness.ts';

const ca = await createClusterCa();

interface Setup {
  base: string;
  store: Store;
  /** Store watches of a resource prefix open right now. */
  openWatches(): number;
  call(caller: string | undefined, method: string, path: string, body?: unknown): Promise<Answer>;
}

interface Answer {
  status: number;
  contentType: string;
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  json: any;
}

async function setup(t: Test): Promise<Setup> {
  const dir = await mkdtemp(joinPath(tmpdir(), 'amalgam-watch-'));
  const raw = await openEmbeddedStore({ dataDir: dir });
  // Counts the watches of resources (the service's, not the control plane's own mirror).
  let open = 0;
  const store: Store = Object.create(raw);
  store.watch = (prefix, options) => {
    const watch = raw.watch(prefix, options);
    if (!/\/(nodes|heartbeats|memory)\/$/.test(prefix)) return watch;
    open++;
    let closed = false;
    const counted: Watch = {
      [Symbol.asyncIterator]: () => watch[Symbol.asyncIterator](),
      close: async () => {
        if (!closed) open--;
        closed = true;
        await watch.close();
      },
    };
    return counted;
  };
  for (const name of [
    'get',
    'range',
    'txn',
    'grantLease',
    'revision',
    'compact',
    'close',
  ] as const) {
    (store as unknown as Record<string, unknown>)[name] = (raw[name] as CallableFunction).bind(raw);
  }
  const runtime = await createControlPlane({
    store,
    singleMachine: true, // every node of this test is on loopback
    ca,
    clusterName: 'watch-test',
    logger,
    controllers: false,
  });
  const app = buildApp({ runtime, logger, registry: new Registry(), identify: callerFromHeader });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  t.teardown(async () => {
    await app.close();
    await runtime.close();
    await raw.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    base,
    store: raw,
    openWatches: () => open,
    async call(caller, method, path, body) {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          ...(caller ? { 'x-test-caller': caller } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return {
        status: res.status,
        contentType: res.headers.get('content-type') ?? '',
        json: text === '' ? undefined : JSON.parse(text),
      };
    },
  };
}

async function joinNode(s: Setup, name: string): Promise<void> {
  const token = await s.call('admin', 'POST', '/v1/tokens', {});
  const { csrPem } = await createKeyAndCsr({ commonName: name });
  const joined = await s.call(undefined, 'POST', '/v1/join', {
    token: token.json.token,
    name,
    csr: csrPem,
    capacity: { memoryBytes: GiB, swapBytes: 0, contributedBytes: GiB, cpus: 2, cpuSpeed: 1000 },
  });
  if (joined.status !== 201) throw new Error(`join: ${JSON.stringify(joined.json)}`);
}

const LOAD = { load1: 0.5, load5: 0.5, load15: 0.5, memoryUsedBytes: 1, processes: 3 };

async function beat(s: Setup, name: string): Promise<void> {
  const res = await s.call(`node:${name}`, 'POST', `/v1/nodes/${name}/heartbeat`, LOAD);
  if (res.status !== 200) throw new Error(`heartbeat: ${JSON.stringify(res.json)}`);
}

/** An open watch stream: its status, and its lines as they come. */
interface Stream {
  response: IncomingMessage;
  next(): Promise<unknown>;
  cut(): void;
}

function openStream(s: Setup, caller: string | undefined, query: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = request(`${s.base}/v1/watch?${query}`, {
      headers: caller ? { 'x-test-caller': caller } : {},
    });
    req.on('error', reject);
    req.on('response', (response) => {
      let buffer = '';
      const lines: string[] = [];
      const waiters: ((line: unknown) => void)[] = [];
      const deliver = () => {
        while (lines.length > 0 && waiters.length > 0) {
          (waiters.shift() as (line: unknown) => void)(JSON.parse(lines.shift() as string));
        }
      };
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        const parts = buffer.split('\n');
        buffer = parts.pop() as string;
        lines.push(...parts);
        deliver();
      });
      response.on('end', () => {
        for (const waiter of waiters.splice(0)) waiter(undefined);
      });
      resolve({
        response,
        next: () =>
          new Promise((r) => {
            waiters.push(r);
            deliver();
          }),
        cut: () => req.destroy(),
      });
    });
    req.end();
  });
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('events stream in revision order with relative keys; resume has no gap', async (t) => {
  const s = await setup(t);
  await joinNode(s, 'node-a');
  const start = (await s.store.revision()) + 1;
  const stream = await openStream(s, 'node:node-a', `prefix=heartbeats/&fromRevision=${start}`);
  t.equal(stream.response.statusCode, 200);
  t.match(stream.response.headers['content-type'], /^application\/x-ndjson/);
  for (let i = 0; i < 5; i++) await beat(s, 'node-a');
  const seen: ResourceEvent[] = [];
  for (let i = 0; i < 5; i++) seen.push((await stream.next()) as ResourceEvent);
  t.same(
    seen.map((e) => [e.type, e.key]),
    Array.from({ length: 5 }, () => ['put', 'heartbeats/node-a']),
  );
  t.match(
    seen[0],
    { value: { name: 'node-a', load: LOAD, lastHeartbeatAt: String, pageserver: null } },
    "the value is the node's liveness (NodeLiveness), as its NodeView shows it",
  );
  for (let i = 1; i < seen.length; i++) {
    t.ok((seen[i] as ResourceEvent).revision > (seen[i - 1] as ResourceEvent).revision);
  }
  stream.cut();

  const third = seen[2] as ResourceEvent;
  const resumed = await openStream(
    s,
    'admin',
    `prefix=heartbeats/&fromRevision=${third.revision + 1}`,
  );
  t.same(await resumed.next(), seen[3], 'resume from last + 1: the next event, not a repeat');
  t.same(await resumed.next(), seen[4]);
  resumed.cut();
});

t.test('bad queries, anonymous callers and compacted revisions get problems', async (t) => {
  const s = await setup(t);
  const cases: [string, string][] = [
    ['', 'prefix'],
    ['prefix=tokens/', 'prefix'],
    ['prefix=nodes/&prefix=memory/', 'prefix'],
    ['prefix=nodes/&fromRevision=0', 'fromRevision'],
    ['prefix=nodes/&fromRevision=-1', 'fromRevision'],
    ['prefix=nodes/&fromRevision=1.5', 'fromRevision'],
    ['prefix=nodes/&fromRevision=abc', 'fromRevision'],
    ['prefix=nodes/&fromRevision=99999999999999999999', 'fromRevision'],
    [`prefix=nodes/${'a'.repeat(300)}`, 'prefix'],
    ['prefix=nodes/&bogus=1', 'bogus'],
  ];
  for (const [query, field] of cases) {
    const res = await s.call('admin', 'GET', `/v1/watch?${query}`);
    t.equal(res.status, 400, `${query}: 400`);
    t.match(res.contentType, /^application\/problem\+json/);
    t.equal(res.json.code, 'INVALID_ARGUMENT');
    t.equal(res.json.field, field, `${query}: names ${field}`);
  }
  const anonymous = await s.call(undefined, 'GET', '/v1/watch?prefix=nodes/');
  t.equal(anonymous.status, 401);
  t.equal(anonymous.json.code, 'UNAUTHENTICATED');

  await joinNode(s, 'node-a');
  for (let i = 0; i < 3; i++) await beat(s, 'node-a');
  const now = await s.store.revision();
  await s.store.compact(now);
  const gone = await s.call('admin', 'GET', '/v1/watch?prefix=heartbeats/&fromRevision=1');
  t.equal(gone.status, 410);
  t.equal(gone.json.code, 'WATCH_COMPACTED');
  t.match(gone.contentType, /^application\/problem\+json/);
  await until('the refused watch to close', () => s.openWatches() === 0);
  t.equal(s.openWatches(), 0, 'the refused watch is closed');
});

t.test('a client that leaves closes the store watch; so does closing the app', async (t) => {
  const s = await setup(t);
  const before = s.openWatches();
  const idle = await openStream(s, 'admin', 'prefix=nodes/');
  t.equal(idle.response.statusCode, 200, 'the 200 is sent even with nothing to say yet');
  t.equal(s.openWatches(), before + 1, 'the watch is open');
  idle.cut();
  await until('the watch to close', () => s.openWatches() === before);
  t.equal(s.openWatches(), before, 'closed when the client left');

  await joinNode(s, 'node-a');
  const busy = await openStream(s, 'admin', 'prefix=heartbeats/&fromRevision=1');
  await beat(s, 'node-a');
  t.match(await busy.next(), { key: 'heartbeats/node-a' });
  busy.cut();
  await until('the busy watch to close', () => s.openWatches() === before);
  t.pass('closed after a cut mid-stream');
});
