/**
 * Issue 4's acceptance for the REST watch: clusterd's REST app over HTTPS with
 * mutual TLS on the embedded store (in-process, composed as server.ts does, so
 * the test can compact the store), two listeners over one control plane (two
 * "replicas"). While nodes heartbeat CHANGES times, three watchers read
 * `heartbeats/` from the same start revision:
 *   - a reference watch that is never cut;
 *   - a raw HTTPS stream that cuts its own connection at 10 random points and
 *     resumes from last.revision + 1;
 *   - the client's `watch`, whose connection the server side cuts at 10
 *     random points, and whose first replica is closed half-way (failover).
 * Both cut watchers must see exactly the reference's events, in order. Then
 * the store is compacted and a resume from before it gets 410 WATCH_COMPACTED.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import t from 'tap';
import type { ResourceEvent } from '../../services/api/contracts.ts';
import { type AmalgamClient, ApiError, createClient } from '../../services/client/index.ts';
import { createControlPlane } from '../../services/controlplane/control-plane.ts';
import { buildApp } from '../../services/controlplane/rest/app.ts';
import {
  createClusterCa,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
} from '../../services/pki/index.ts';
import { openEmbeddedStore } from '../../services/store/embedded-store.ts';

const CHANGES = Number(process.env.WATCH_CHANGES ?? 10_000);
const NODES = 4;
const CUTS = 10; // per cut watcher: 20 in all
const GiB = 1024 ** 3;
const logger = pino({ level: 'silent' });

const ca = await createClusterCa({ commonName: 'watch-test-ca' });
const server = await createKeyAndCsr({ commonName: 'clusterd', ipAddresses: ['127.0.0.1'] });
const serverCert = await signCsr(ca, server.csrPem, {
  commonName: 'clusterd',
  organization: 'amalgam:control-plane',
  ipAddresses: ['127.0.0.1'],
  usages: ['server', 'client'],
  validityDays: 1,
});
const admin = await issueAdminCredential(ca);

const dir = await mkdtemp(join(tmpdir(), 'amalgam-watch-resume-'));
const store = await openEmbeddedStore({ dataDir: dir });
const runtime = await createControlPlane({
  store,
  singleMachine: true, // every node of this test is on loopback
  ca,
  clusterName: 'watch-resume',
  logger,
  controllers: false,
});

/** Sockets of the client's watch requests (the raw watchers say `x-test-watcher`). */
const clientWatchSockets = new Set<Socket>();
async function listen() {
  const app = buildApp({
    runtime,
    logger,
    registry: new Registry(),
    https: {
      cert: serverCert,
      key: server.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: false,
    },
  });
  app.server.on('request', (req) => {
    if (req.url?.startsWith('/v1/watch') && req.headers['x-test-watcher'] === undefined) {
      const socket = req.socket;
      clientWatchSockets.add(socket);
      socket.once('close', () => clientWatchSockets.delete(socket));
    }
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `https://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}
const a = await listen();
const b = await listen();
const clients: AmalgamClient[] = [];
t.teardown(async () => {
  for (const c of clients) await c.close();
  await a.app.close();
  await b.app.close();
  await runtime.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const client = (endpoints: string[], cred: { certPem: string; keyPem: string }) => {
  const c = createClient({ endpoints, ca: ca.certPem, cert: cred.certPem, key: cred.keyPem });
  clients.push(c);
  return c;
};

/** A raw watch over HTTPS as the admin: lines as they come, until cut or ended. */
function rawWatch(
  fromRevision: number,
  onEvent: (event: ResourceEvent, cut: () => void) => void,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${b.url}/v1/watch?prefix=heartbeats/&fromRevision=${fromRevision}`,
      {
        ca: ca.certPem,
        cert: admin.certPem,
        key: admin.keyPem,
        headers: { 'x-test-watcher': 'raw' },
        agent: false,
      },
      (res) => {
        let buffer = '';
        let cut = false;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (cut) return;
          buffer += chunk;
          if (res.statusCode !== 200) return;
          const lines = buffer.split('\n');
          buffer = lines.pop() as string;
          for (const line of lines) {
            if (cut) return;
            onEvent(JSON.parse(line) as ResourceEvent, () => {
              cut = true;
              req.destroy();
              resolve({ status: 200, body: '' });
            });
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: buffer }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, body: buffer }));
      },
    );
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
    req.end();
  });
}

/** `count` distinct random points in [1, total). */
function cutPoints(count: number, total: number): Set<number> {
  const points = new Set<number>();
  while (points.size < count) points.add(1 + Math.floor(Math.random() * (total - 1)));
  return points;
}

const describe = (e: ResourceEvent) => `${e.revision} ${e.type} ${e.key}`;

t.test(`${CHANGES} changes, 20 cuts: every event exactly once, in order`, async (t) => {
  const adminClient = client([b.url], admin);
  const nodeClients: { name: string; c: AmalgamClient }[] = [];
  for (let i = 0; i < NODES; i++) {
    const name = `node-${i}`;
    const { token } = await adminClient.tokens.create({});
    const { csrPem, keyPem } = await createKeyAndCsr({ commonName: name });
    const joined = await adminClient.nodes.join({
      token,
      name,
      csr: csrPem,
      capacity: { memoryBytes: GiB, swapBytes: 0, contributedBytes: GiB, cpus: 2, cpuSpeed: 1 },
    });
    nodeClients.push({ name, c: client([b.url], { certPem: joined.certificate, keyPem }) });
  }
  const start = (await store.revision()) + 1;
  const started = Date.now();

  // The reference: never cut.
  const reference: ResourceEvent[] = [];
  const referenceDone = new Promise<void>((resolve, reject) => {
    rawWatch(start, (event, cut) => {
      reference.push(event);
      if (reference.length === CHANGES) {
        cut();
        resolve();
      }
    }).catch(reject);
  });

  // Raw, cutting itself and resuming from last.revision + 1.
  const raw: ResourceEvent[] = [];
  const rawCuts = cutPoints(CUTS, CHANGES);
  let rawResumes = 0;
  const rawDone = (async () => {
    let from = start;
    while (raw.length < CHANGES) {
      await rawWatch(from, (event, cut) => {
        raw.push(event);
        from = event.revision + 1;
        if (rawCuts.has(raw.length) || raw.length === CHANGES) cut();
      });
      rawResumes++;
    }
  })();

  // The client: its connection is cut by the server side; replica A closes half-way.
  const watcher = client([a.url, b.url], admin);
  const viaClient: ResourceEvent[] = [];
  const clientCuts = cutPoints(CUTS, CHANGES);
  let serverCuts = 0;
  const clientDone = (async () => {
    const watch = watcher.watch({ prefix: 'heartbeats/', fromRevision: start });
    for await (const event of watch) {
      viaClient.push(event);
      if (clientCuts.has(viaClient.length)) {
        for (const socket of clientWatchSockets) socket.destroy();
        serverCuts++;
        if (serverCuts === CUTS / 2) void a.app.close();
      }
      if (viaClient.length === CHANGES) break;
    }
    await watch.close();
  })();

  // The changes: every node heartbeats until CHANGES beats were acknowledged.
  let beats = 0;
  const load = { load1: 0, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 1 };
  await Promise.all(
    nodeClients.map(async ({ name, c }) => {
      while (beats < CHANGES) {
        beats++;
        await c.nodes.heartbeat(name, load);
      }
    }),
  );
  await Promise.all([referenceDone, rawDone, clientDone]);
  t.comment(`${CHANGES} changes watched in ${Date.now() - started} ms`);

  t.equal(reference.length, CHANGES, 'the reference saw every change');
  t.ok(
    reference.every((e, i) => i === 0 || e.revision > (reference[i - 1] as ResourceEvent).revision),
    'the reference is in revision order',
  );
  t.ok(rawResumes > CUTS, `the raw watcher resumed ${rawResumes} times`);
  t.equal(serverCuts, CUTS, 'the client was cut 10 times');
  t.same(raw.map(describe), reference.map(describe), 'raw resume: no gap, no duplicate');
  t.same(viaClient.map(describe), reference.map(describe), 'client resume: no gap, no duplicate');
  t.same(viaClient, reference, 'the same values too');

  // Compaction: history before `middle` is gone.
  const middle = (reference[Math.floor(CHANGES / 2)] as ResourceEvent).revision;
  await store.compact(middle);
  const gone = await rawWatch(start, () => undefined);
  t.equal(gone.status, 410, 'a resume from a compacted revision gets 410');
  t.equal(JSON.parse(gone.body).code, 'WATCH_COMPACTED');
  const late = watcher.watch({ prefix: 'heartbeats/', fromRevision: start });
  let ended: unknown;
  try {
    for await (const _ of late) t.fail('no event from a compacted revision');
  } catch (err) {
    ended = err;
  }
  t.ok(ended instanceof ApiError, 'the client watch ends with an ApiError');
  t.equal((ended as ApiError).code, 'WATCH_COMPACTED', 'WATCH_COMPACTED: re-list');
  t.equal((ended as ApiError).status, 410);
  const kept = await rawWatch(middle, (event, cut) => {
    t.equal(event.revision, middle, 'the compaction revision itself is still there');
    cut();
  });
  t.equal(kept.status, 200);
});
