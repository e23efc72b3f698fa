/**
 * A process and a process load, sent through the proto as the server sends
 * them (nulls left unset), come back from the client's mapping equal to what
 * REST answers. No socket is opened: the messages are only encoded and decoded.
 */
import t from 'tap';
import { loadAmalgamProto } from '../../../services/api/grpc-proto.ts';
import type { ProcessLoadView, ProcessView } from '../../../services/api/process-contracts.ts';
import {
  type Message,
  processFromProto,
  processLoadFromProto,
} from '../../../services/client/grpc-messages.ts';

interface Codec {
  responseSerialize(value: object): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}
const processes = loadAmalgamProto()['amalgam.v1.Processes'] as unknown as Record<string, Codec>;

/** What the server's handler does: a null is an unset field. */
function withoutNulls(value: object): Message {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null));
}

function roundTrip(method: string, value: object): Message {
  const codec = processes[method] as Codec;
  return codec.responseDeserialize(codec.responseSerialize(value)) as Message;
}

const pending: ProcessView = {
  cpid: 100_001,
  command: '/bin/sleep',
  args: [],
  migratable: 'restart',
  cpus: 1,
  labels: {},
  home: 'node-a',
  epoch: 1,
  state: 'pending',
  migration: null,
  migrations: 0,
  lastMovedAt: null,
  starts: 0,
  owner: 'admin',
  createdAt: 1_700_000_000_000,
  startedAt: null,
  exitCode: null,
  failure: null,
  history: [],
};

t.test('a process with every optional field unset reads back with nulls', async (t) => {
  t.same(processFromProto(roundTrip('Get', withoutNulls(pending))), pending);
});

t.test('a migrating process that exited 0 keeps its zero and its migration', async (t) => {
  const migrating: ProcessView = {
    ...pending,
    args: ['10'],
    labels: { role: 'worker' },
    state: 'migrating',
    migration: {
      from: 'node-a',
      to: 'node-b',
      reason: 'manual',
      decidedAt: 1_700_000_001_000,
      sourceStopped: null,
      sourceLostAt: null,
    },
    lastMovedAt: 1_700_000_001_000,
    startedAt: 1_700_000_000_500,
    exitCode: 0,
    history: [{ at: 1_700_000_000_500, epoch: 1, node: 'node-a', event: 'running' }],
  };
  const sent = {
    ...withoutNulls(migrating),
    migration: withoutNulls(migrating.migration as object),
  };
  t.same(processFromProto(roundTrip('Get', sent)), migrating);
});

t.test('a process load without an agent address reads back with null', async (t) => {
  const load: ProcessLoadView = {
    node: 'node-a',
    reportedAt: 1_700_000_000_000,
    cpus: 4,
    cpuSpeed: 1,
    load1: 0.5,
    runnable: 1,
    agentAddress: null,
    processes: [{ cpid: 100_001, epoch: 1, cpu: 0.25 }],
  };
  t.same(processLoadFromProto(roundTrip('ReportLoad', withoutNulls(load))), load);
  const published = { ...load, agentAddress: '10.0.0.1:7070' };
  t.same(processLoadFromProto(roundTrip('ReportLoad', published)), published);
});
