/**
 * The Processes service over gRPC: the same service functions as REST, so
 * the same records and catalogue codes (PID blocks, create with a PID from
 * the caller's block, get/list, reports fenced by the epoch, migrate, kill).
 */
import t from 'tap';
import { createKeyAndCsr } from '../../../services/pki/index.ts';
import { codeOf, startGrpcHarness } from './grpc-harness.ts';

t.test('Processes over gRPC', async (t) => {
  const h = await startGrpcHarness(t);
  const adminId = { keyPem: h.pki.admin.keyPem, certPem: h.pki.admin.certPem };
  const { token } = await h.runtime.tokens.create({ kind: 'admin' }, {});
  const { csrPem, keyPem } = await createKeyAndCsr({ commonName: 'g1' });
  const joined = await h.runtime.nodes.join({
    token,
    name: 'g1',
    csr: csrPem,
    capacity: {
      memoryBytes: 1 << 30,
      swapBytes: 0,
      contributedBytes: 1 << 24,
      cpus: 2,
      cpuSpeed: 1,
    },
  });
  const nodeCaller = { kind: 'node' as const, name: 'g1' };
  await h.runtime.nodes.heartbeat(nodeCaller, 'g1', {
    load1: 0,
    load5: 0,
    load15: 0,
    memoryUsedBytes: 0,
    processes: 1,
  });
  const node = h.rpc('Processes', { keyPem, certPem: joined.certificate });
  const admin = h.rpc('Processes', adminId);

  const block = (await node('ClaimPidBlock', { size: 8 })) as {
    start: number;
    size: number;
    owner: string;
  };
  t.match(block, { size: 8, owner: 'node:g1' });
  const blocks = (await admin('ListPidBlocks', {})) as { items: (typeof block)[] };
  t.match(
    blocks.items.find((b) => b.start === block.start),
    { size: 8, owner: 'node:g1' },
    'ListPidBlocks reads the claimed block from the table',
  );
  const created = (await node('Create', {
    cpid: block.start,
    command: '/bin/true',
    migratable: 'checkpoint',
  })) as { cpid: number; home: string; epoch: number; state: string };
  t.match(created, { cpid: block.start, home: 'g1', epoch: 1, state: 'pending' });
  const viaAdmin = (await admin('Create', { command: '/bin/sleep', args: ['1'] })) as {
    cpid: number;
  };
  t.not(viaAdmin.cpid, block.start, 'clusterd assigns from its own block');
  const list = (await admin('List')) as { items: { cpid: number }[] };
  t.equal(list.items.length, 2);

  const running = (await node('Report', {
    name: 'g1',
    cpid: block.start,
    epoch: 1,
    event: 'running',
  })) as {
    state: string;
  };
  t.equal(running.state, 'running');
  await node('Report', { name: 'g1', cpid: block.start, epoch: 7, event: 'running' }).then(
    () => t.fail('a stale epoch was accepted'),
    (err) => t.equal(codeOf(err), 'STALE_EPOCH'),
  );
  await admin('Migrate', { cpid: block.start, to: 'nowhere' }).then(
    () => t.fail('migrated to a missing node'),
    (err) => t.equal(codeOf(err), 'NODE_NOT_FOUND'),
  );
  await node('Migrate', { cpid: block.start, to: 'g1' }).then(
    () => t.fail('a node migrated'),
    (err) => t.equal(codeOf(err), 'FORBIDDEN'),
  );
  await admin('Get', { cpid: 999_999 }).then(
    () => t.fail('found a missing process'),
    (err) => t.equal(codeOf(err), 'PROCESS_NOT_FOUND'),
  );
  const killed = (await admin('Kill', { cpid: block.start })) as { state: string };
  t.equal(killed.state, 'killed');
  const load = (await node('ReportLoad', {
    name: 'g1',
    cpus: 2,
    cpuSpeed: 1.5,
    load1: 0.2,
    runnable: 1,
    agentAddress: '127.0.0.1:9',
    processes: [],
  })) as { node: string; cpuSpeed: number };
  t.match(load, { node: 'g1', cpuSpeed: 1.5 });
  t.equal(((await admin('ListLoads')) as { items: unknown[] }).items.length, 1);
});
