/**
 * Acceptance: cluster PIDs stay unique across 3 agents starting at once.
 * Three nodes, each with its own certificate, claim PID blocks concurrently
 * (small blocks, so there are many racing claims) and create 10,000 process
 * records from PIDs they assign locally; clusterd assigns PIDs from its own
 * blocks for `clusteradm run` at the same time. Every PID is unique, and
 * each lies in a block its creator owns.
 *
 * No agents run here (the records stay pending): the nodes beat once and
 * the node grace is long, so they are Ready for placement.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';
import { PidAllocator, type PidBlock } from '../../services/core/pid-blocks.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { joinNode } from '../harness/node.ts';

const RUNS = Number(process.env.PROC_PID_RUNS ?? 10_000);
const cd = await startClusterdReplicas({
  count: 1,
  store: { backend: 'embedded' },
  extraConfig: { nodeGraceSeconds: 3600, processes: { rebalance: false } },
});
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), `amalgam-pids-${process.pid}-`));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test(`${RUNS} runs from 3 agents at once: unique cluster PIDs`, async (t) => {
  const names = ['pid-a', 'pid-b', 'pid-c'];
  const agents: { name: string; client: AmalgamClient['processes']; close(): Promise<void> }[] = [];
  for (const name of names) {
    const { files } = await joinNode(cd, name, {
      home: join(dir, name),
      contributedBytes: 4 << 20,
    });
    const creds = {
      ca: await readFile(files.caFile, 'utf8'),
      cert: await readFile(files.certFile, 'utf8'),
      key: await readFile(files.keyFile, 'utf8'),
    };
    const nodes = createClient({ endpoints: cd.urls, ...creds });
    await nodes.nodes.heartbeat(name, {
      load1: 0,
      load5: 0,
      load15: 0,
      memoryUsedBytes: 0,
      processes: 1,
    });
    await nodes.close();
    const own = createClient({ endpoints: cd.urls, ...creds });
    agents.push({ name, client: own.processes, close: () => own.close() });
  }
  const adminClient = createClient({ endpoints: cd.urls, ...cd.admin });
  const admin = adminClient.processes;
  t.teardown(async () => {
    await Promise.all([adminClient.close(), ...agents.map((a) => a.close())]);
  });

  const created: { cpid: number; by: string }[] = [];
  const perAgent = Math.floor((RUNS - 100) / 3);
  const quota = [perAgent, perAgent, RUNS - 100 - 2 * perAgent];
  await Promise.all([
    ...agents.map(async (agent, i) => {
      const pids = new PidAllocator(() => agent.client.claimPidBlock(64));
      let left = quota[i] as number;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (left > 0) {
            left--;
            const cpid = await pids.next();
            const r = await agent.client.create({ cpid, command: '/bin/true', node: agent.name });
            created.push({ cpid: r.cpid, by: `node:${agent.name}` });
          }
        }),
      );
    }),
    (async () => {
      for (let i = 0; i < 100; i += 10) {
        const batch = await Promise.all(
          Array.from({ length: 10 }, () => admin.create({ command: '/bin/true', node: 'pid-a' })),
        );
        for (const r of batch) created.push({ cpid: r.cpid, by: 'clusterd' });
      }
    })(),
  ]);
  t.equal(created.length, RUNS, `${RUNS} processes created`);
  t.equal(new Set(created.map((c) => c.cpid)).size, RUNS, 'every cluster PID is unique');
  const listed = await admin.list();
  t.equal(listed.length, RUNS, 'ps lists every one of them');
  t.equal(new Set(listed.map((r) => r.cpid)).size, RUNS, 'with unique PIDs');
  const blocks = (await admin.listPidBlocks()).sort((a, b) => a.start - b.start);
  t.ok(
    blocks.every(
      (b, i) =>
        i === 0 || (blocks[i - 1] as PidBlock).start + (blocks[i - 1] as PidBlock).size <= b.start,
    ),
    `the ${blocks.length} listed PID blocks are disjoint`,
  );
  t.ok(
    created.every((c) =>
      blocks.some(
        (b) =>
          b.start <= c.cpid &&
          c.cpid < b.start + b.size &&
          (c.by === 'clusterd' ? b.owner.startsWith('clusterd:') : b.owner === c.by),
      ),
    ),
    'every PID lies in a listed block of the one who assigned it',
  );
  const owners = new Map(listed.map((r) => [r.cpid, r.owner]));
  t.ok(
    created.filter((c) => c.by !== 'clusterd').every((c) => owners.get(c.cpid) === c.by),
    'each record belongs to the node that assigned its PID',
  );
  // A PID from another node's block is refused.
  const foreign = created.find((c) => c.by === 'node:pid-b') as { cpid: number };
  await agents[0]?.client.create({ cpid: foreign.cpid + 100_000_000, command: '/bin/true' }).then(
    () => t.fail("a PID outside the caller's blocks was accepted"),
    (err: { code?: string }) =>
      t.equal(err.code, 'FORBIDDEN', 'a PID outside its blocks is FORBIDDEN'),
  );
});
