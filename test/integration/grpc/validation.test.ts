/**
 * The limits of openapi/amalgam.yaml hold on both doors: the gRPC door runs
 * the REST operation's own request schemas on the decoded message, so input
 * over a limit gets INVALID_ARGUMENT naming the field (the `amalgam-details`
 * trailer's `field`), the same code and field as REST's 400 problem.
 *
 * NaN: a proto double carries it, JSON cannot (JSON.stringify writes null), so
 * REST is sent `null` and the string "NaN" instead; both are 400 on `load1`.
 */
import type * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { DETAILS_KEY } from '../../../services/api/grpc-error-codec.ts';
import { createKeyAndCsr } from '../../../services/pki/index.ts';
import { startHarness } from '../../unit/controlplane/rest/rest-harness.ts';
import { codeOf, startGrpcHarness } from './grpc-harness.ts';

const capacity = {
  memoryBytes: 1 << 30,
  swapBytes: 0,
  contributedBytes: 1 << 24,
  cpus: 2,
  cpuSpeed: 1,
};
const load = { load1: 0, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 1 };
const tooManyArgs = Array.from({ length: 257 }, (_, i) => `a${i}`);

/** The code and `field` of a refused gRPC call. */
async function refusal(call: Promise<unknown>): Promise<{ code: string; field: unknown }> {
  try {
    await call;
  } catch (err) {
    const raw = (err as grpc.ServiceError).metadata?.get(DETAILS_KEY)[0];
    const details = typeof raw === 'string' ? JSON.parse(raw) : {};
    return { code: codeOf(err), field: details.field };
  }
  return { code: 'accepted', field: undefined };
}

t.test('gRPC: input over the schema limits is INVALID_ARGUMENT naming the field', async (t) => {
  const h = await startGrpcHarness(t);
  const admin = { keyPem: h.pki.admin.keyPem, certPem: h.pki.admin.certPem };
  const { token } = await h.runtime.tokens.create({ kind: 'admin' }, {});
  const { csrPem, keyPem } = await createKeyAndCsr({ commonName: 'v1' });
  const nodes = h.rpc('Nodes', undefined);

  t.same(
    await refusal(
      nodes('Join', { token, name: 'v1', csr: csrPem, capacity: { ...capacity, cpus: -1 } }),
    ),
    { code: 'INVALID_ARGUMENT', field: 'capacity.cpus' },
    'a join with cpus -1',
  );
  const joined = (await nodes('Join', { token, name: 'v1', csr: csrPem, capacity })) as {
    certificate: string;
  };
  const self = { keyPem, certPem: joined.certificate };

  t.same(
    await refusal(h.rpc('Nodes', self)('Heartbeat', { name: 'v1', load: { ...load, load1: NaN } })),
    { code: 'INVALID_ARGUMENT', field: 'load1' },
    'a heartbeat with a NaN load',
  );
  t.same(
    await refusal(h.rpc('Processes', admin)('Create', { command: '/bin/true', args: tooManyArgs })),
    { code: 'INVALID_ARGUMENT', field: 'args' },
    'a process with more args than the schema allows',
  );
  t.same(
    await refusal(
      h.rpc('Processes', self)('ReportLoad', {
        name: 'v1',
        cpus: -1,
        cpuSpeed: 1,
        load1: 0,
        runnable: 0,
        processes: [],
      }),
    ),
    { code: 'INVALID_ARGUMENT', field: 'cpus' },
    'a process load report with cpus -1',
  );
  t.same(
    await refusal(
      h.rpc('Processes', self)('Report', {
        name: 'v1',
        cpid: 100000,
        epoch: 1,
        event: 'failed',
        failure: 'x'.repeat(1025),
      }),
    ),
    { code: 'INVALID_ARGUMENT', field: 'failure' },
    'a failure string over its limit',
  );
  // What is valid still passes: the heartbeat and the load report without their bad fields.
  await h.rpc('Nodes', self)('Heartbeat', { name: 'v1', load });
  await h.rpc('Processes', self)('ReportLoad', {
    name: 'v1',
    cpus: 2,
    cpuSpeed: 1,
    load1: 0,
    runnable: 0,
    processes: [],
  });
});

t.test('REST: the same input is 400 with the same code and field', async (t) => {
  const h = await startHarness(t);
  const refused = async (caller: string | undefined, url: string, payload: unknown) => {
    const res = await h.call(caller, { method: 'POST', url, payload: payload as object });
    const body = res.json();
    return { status: res.statusCode, code: body.code, field: body.field };
  };
  const created = await h.call('admin', { method: 'POST', url: '/v1/tokens', payload: {} });
  const { csrPem } = await createKeyAndCsr({ commonName: 'v1' });
  t.same(
    await refused(undefined, '/v1/join', {
      token: created.json().token,
      name: 'v1',
      csr: csrPem,
      capacity: { ...capacity, cpus: -1 },
    }),
    { status: 400, code: 'INVALID_ARGUMENT', field: 'capacity.cpus' },
    'a join with cpus -1',
  );
  await h.join('v1');
  for (const load1 of [null, 'NaN']) {
    t.same(
      await refused('node:v1', '/v1/nodes/v1/heartbeat', { ...load, load1 }),
      { status: 400, code: 'INVALID_ARGUMENT', field: 'load1' },
      `a heartbeat with load1 ${JSON.stringify(load1)} (JSON has no NaN)`,
    );
  }
  t.same(
    await refused('admin', '/v1/processes', { command: '/bin/true', args: tooManyArgs }),
    { status: 400, code: 'INVALID_ARGUMENT', field: 'args' },
    'a process with more args than the schema allows',
  );
  t.same(
    await refused('node:v1', '/v1/process-loads/v1', {
      cpus: -1,
      cpuSpeed: 1,
      load1: 0,
      runnable: 0,
      processes: [],
    }),
    { status: 400, code: 'INVALID_ARGUMENT', field: 'cpus' },
    'a process load report with cpus -1',
  );
  t.same(
    await refused('node:v1', '/v1/nodes/v1/processes/100000/report', {
      epoch: 1,
      event: 'failed',
      failure: 'x'.repeat(1025),
    }),
    { status: 400, code: 'INVALID_ARGUMENT', field: 'failure' },
    'a failure string over its limit',
  );
});
