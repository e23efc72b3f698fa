import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { codeOf, startGrpcHarness } from './grpc-harness.ts';

t.test('smoke', async (t) => {
  const h = await startGrpcHarness(t);
  const admin = h.rpc('Cluster', h.pki.admin);
  t.match(await admin('GetInfo'), { name: 'parity-test' });
  const anon = h.rpc('Cluster', undefined);
  const err = (await anon('GetInfo').catch((e) => e)) as grpc.ServiceError;
  t.equal(err.code, grpc.status.UNAUTHENTICATED);
  t.equal(codeOf(err), 'UNAUTHENTICATED');
});
