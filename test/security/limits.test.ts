/**
 * Limits at clusterd's doors, attacked on a real clusterd (REST + gRPC, the
 * embedded store): each attack is refused with its status and stable code,
 * a log line names it, and the server keeps serving everyone else.
 *
 *   1. a slow body on the anonymous POST /v1/join: 408 REQUEST_TIMEOUT;
 *   2. connections beyond limits.maxConnections: closed at accept, while a
 *      client with an open connection is still served;
 *   3. an oversized gRPC message from an anonymous client: RESOURCE_EXHAUSTED
 *      (PAYLOAD_TOO_LARGE) before authentication;
 *   4. a flood of watches from one caller: over the cap TOO_MANY_WATCHES,
 *      others still watch, heartbeats still answered (latency printed);
 *   5. PID-block and segment quotas under concurrent claims: exactly the
 *      quota succeeds, the rest QUOTA_EXCEEDED naming the count.
 * (The slow-consumer cut and the Informer's re-list are unit tests:
 * test/unit/controlplane/service/watch-limits.test.ts, test/unit/reconcile.)
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { ApiError } from '../../services/client/errors.ts';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';
import { type ClusterdReplicas, startClusterdReplicas } from '../harness/clusterd.ts';
import { joinNode } from '../harness/node.ts';
import { until } from '../harness/until.ts';

const REQUEST_TIMEOUT_MS = 2000;
const MAX_CONNECTIONS = 16;
const WATCHES_PER_CALLER = 4;
const PID_BLOCKS = 3;
const SEGMENTS = 2;
const MiB = 1024 * 1024;

const cd: ClusterdReplicas = await startClusterdReplicas({
  store: { backend: 'embedded' },
  grpc: true,
  extraConfig: {
    limits: {
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      headersTimeoutMs: REQUEST_TIMEOUT_MS,
      // Long enough that the "existing client" of test 2 keeps its connection.
      keepAliveTimeoutMs: 120_000,
      maxConnections: MAX_CONNECTIONS,
      watchesPerCaller: WATCHES_PER_CALLER,
    },
    quotas: { pidBlocksPerOwner: PID_BLOCKS, segmentsPerOwner: SEGMENTS },
  },
});
t.teardown(() => cd.destroy());
const home = await mkdtemp(join(tmpdir(), 'amalgam-limits-'));
t.teardown(() => rm(home, { recursive: true, force: true }));

const url = new URL(cd.urls[0] as string);
const port = Number(url.port);
const logFile = join(dirname(cd.tlsFiles.caFile), 'clusterd-0.log');
const logHas = (text: string) => readFileSync(logFile, 'utf8').includes(text);

const node = await joinNode(cd, 'limits-a', { home, contributedBytes: 256 * MiB });
const nodeCredential = {
  ca: cd.admin.ca,
  cert: node.joined.certificate,
  key: node.keyPem,
};
const nodeClient: AmalgamClient = createClient({ endpoints: cd.urls, ...nodeCredential });
t.teardown(() => nodeClient.close());
const LOAD = { load1: 0, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 0 };

/** One HTTPS GET with the admin credential: its status. */
function adminGet(path: string, agent?: HttpsAgent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, url),
      { ...cd.admin, ...(agent ? { agent } : {}), timeout: 30_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

t.test(
  'a slow body on POST /v1/join is cut by the request timeout; others are served',
  async (t) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: cd.admin.ca,
      servername: 'localhost',
    });
    await new Promise((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const started = Date.now();
    socket.write(
      'POST /v1/join HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        // Within the body limit: only its pace is at fault.
        'Content-Length: 60000\r\n\r\n{',
    );
    // One byte every 100 ms: the socket is never idle, the request never complete.
    const dribble = setInterval(() => {
      if (!socket.destroyed) socket.write(' ');
    }, 100);
    t.teardown(() => clearInterval(dribble));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', () => {});
    const closed = new Promise<number>((resolve) =>
      socket.once('close', () => resolve(Date.now())),
    );

    // Meanwhile other clients are answered, again and again.
    let served = 0;
    while (!socket.destroyed) {
      const { status } = await adminGet('/v1/nodes');
      t.equal(status, 200);
      served += 1;
      if (Date.now() - started > 60_000) break;
    }
    const elapsed = (await closed) - started;
    clearInterval(dribble);
    t.ok(served > 0, `${served} other requests were answered while the slow body dribbled`);
    t.ok(elapsed >= REQUEST_TIMEOUT_MS, `cut after ${elapsed} ms, no earlier than the timeout`);
    t.match(answer, /^HTTP\/1\.1 408 /);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    t.equal(body.code, 'REQUEST_TIMEOUT');
    t.equal(body.status, 408);
    await until('the refusal in the log', () => logHas('"code":"REQUEST_TIMEOUT"'));
  },
);

t.test('connections beyond maxConnections are refused; an open client still works', async (t) => {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  t.equal((await adminGet('/v1/nodes', agent)).status, 200, 'the existing client connects');

  /** A fresh TLS connection: true when the server closed it without a handshake. */
  const refused = () =>
    new Promise<boolean>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: cd.admin.ca, servername: 'localhost' });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
      s.once('close', () => resolve(true));
    });

  const idle: Socket[] = [];
  t.teardown(() => {
    for (const s of idle) s.destroy();
  });
  // Plain TCP connections that say nothing: each holds a slot.
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const s = netConnect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    idle.push(s);
  }
  await until('a new connection to be refused', async () => (await refused()) || undefined);
  t.ok(await refused(), 'still refused');
  t.equal((await adminGet('/v1/nodes', agent)).status, 200, 'the open connection is served');
  await until('the drop in the log', () => logHas('limits.maxConnections reached'));

  for (const s of idle.splice(0)) s.destroy();
  await until('a new connection to be accepted again', async () => !(await refused()));
});

t.test(
  'an oversized gRPC message from an anonymous client: RESOURCE_EXHAUSTED before auth',
  async (t) => {
    const client = new grpc.Client(
      cd.grpcUrls[0] as string,
      grpc.credentials.createSsl(Buffer.from(cd.admin.ca)),
    );
    t.teardown(() => client.close());
    const call = (bytes: number) =>
      new Promise<grpc.ServiceError>((resolve, reject) => {
        client.makeUnaryRequest(
          '/amalgam.v1.Tokens/Create',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(bytes, 0x41),
          (err) => (err ? resolve(err) : reject(new Error('answered'))),
        );
      });
    const small = await call(0); // an empty (valid) message
    t.equal(
      small.code,
      grpc.status.UNAUTHENTICATED,
      'a small anonymous call reaches the auth check',
    );
    const big = await call(1024 * 1024);
    t.equal(big.code, grpc.status.RESOURCE_EXHAUSTED, 'a 1 MiB message is refused first');
    t.equal(big.metadata.get('amalgam-code')[0], 'PAYLOAD_TOO_LARGE');
    await until('the refusal in the log', () => logHas('gRPC message over the limit refused'));
  },
);

t.test(
  'a flood of watches: over the cap refused, others served, heartbeats answered',
  async (t) => {
    const admin = createClient({
      transport: 'grpc',
      endpoints: cd.grpcUrls,
      ...cd.admin,
    });
    t.teardown(() => admin.close());
    const FLOOD = 60;
    const watches = Array.from({ length: FLOOD }, () => admin.watch({ prefix: 'nodes/' }));
    t.teardown(() => Promise.all(watches.map((w) => w.close())));
    let refusedCount = 0;
    const codes = new Set<string>();
    for (const w of watches) {
      w[Symbol.asyncIterator]()
        .next()
        .catch((err: ApiError) => {
          refusedCount += 1;
          codes.add(`${err.code} ${err.status}`);
        });
    }
    // Heartbeats of a node meanwhile: answered, latency printed (not asserted).
    const latencies: number[] = [];
    const beat = async () => {
      const start = performance.now();
      await nodeClient.nodes.heartbeat('limits-a', LOAD);
      latencies.push(performance.now() - start);
    };
    while (refusedCount < FLOOD - WATCHES_PER_CALLER) {
      await beat();
      if (latencies.length > 2000) break;
    }
    for (let i = 0; i < 5; i++) await beat();
    t.equal(refusedCount, FLOOD - WATCHES_PER_CALLER, 'all but the cap refused');
    t.same([...codes], ['TOO_MANY_WATCHES 429']);
    latencies.sort((a, b) => a - b);
    t.comment(
      `heartbeat latency during the flood: n=${latencies.length} median=${latencies[latencies.length >> 1]?.toFixed(1)} ms max=${latencies.at(-1)?.toFixed(1)} ms`,
    );

    // Another caller still watches, and sees its own heartbeat.
    const mine = nodeClient.watch({ prefix: 'heartbeats/limits-a' });
    t.teardown(() => mine.close());
    const first = mine[Symbol.asyncIterator]().next();
    await until('a heartbeat event on the node watch', async () => {
      await beat();
      return Promise.race([first, new Promise((r) => setTimeout(() => r(undefined), 200))]);
    });
    const metrics = (await adminGet('/metrics')).body;
    t.match(metrics, new RegExp(`amalgam_watches_open\\{kind="nodes"\\} ${WATCHES_PER_CALLER}\\b`));
    t.match(metrics, /amalgam_watches_refused_total\{scope="caller"\} 56\b/);
    t.ok(logHas('"code":"TOO_MANY_WATCHES"'), 'the refusals are logged');
  },
);

t.test('PID-block quota under concurrent claims: exactly the quota is granted', async (t) => {
  const results = await Promise.allSettled(
    Array.from({ length: 8 }, () => nodeClient.processes.claimPidBlock(16)),
  );
  const granted = results.filter((r) => r.status === 'fulfilled');
  const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as ApiError] : []));
  t.equal(granted.length, PID_BLOCKS);
  t.equal(refused.length, 8 - PID_BLOCKS);
  for (const err of refused) {
    t.equal(err.code, 'QUOTA_EXCEEDED');
    t.equal(err.status, 403);
    t.match(err.details, { quota: 'pidBlocksPerOwner', limit: PID_BLOCKS, current: PID_BLOCKS });
  }
  const blocks = await nodeClient.processes.listPidBlocks();
  t.equal(blocks.filter((b) => b.owner === 'node:limits-a').length, PID_BLOCKS, 'no over-claim');
  const again = await refusal(nodeClient.processes.claimPidBlock(16));
  t.equal(again.code, 'QUOTA_EXCEEDED');
  await until('the refusal in the log', () => logHas('"code":"QUOTA_EXCEEDED"'));
});

t.test('segment quota under concurrent allocations: exactly the quota is granted', async (t) => {
  const results = await Promise.allSettled(
    Array.from({ length: 6 }, (_, i) =>
      nodeClient.memory.allocateSegment({ id: `q-${i}`, size: MiB }),
    ),
  );
  const granted = results.filter((r) => r.status === 'fulfilled');
  const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as ApiError] : []));
  t.equal(granted.length, SEGMENTS);
  for (const err of refused) {
    t.equal(err.code, 'QUOTA_EXCEEDED');
    t.equal(err.status, 403);
    t.match(err.details, { quota: 'segmentsPerOwner', limit: SEGMENTS, current: SEGMENTS });
  }
  const segments = await nodeClient.memory.listSegments();
  t.equal(segments.filter((s) => s.owner === 'node:limits-a').length, SEGMENTS, 'no over-claim');
  // Freeing one makes room for one.
  const kept = segments.find((s) => s.owner === 'node:limits-a');
  await nodeClient.memory.freeSegment(kept?.id as string);
  await nodeClient.memory.allocateSegment({ id: 'q-after-free', size: MiB });
});
