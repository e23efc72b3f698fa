/**
 * A failed gRPC call becomes the server's AmalgamError again: same code,
 * details and message, and as `status` the catalogue's HTTP status (what REST
 * would have answered). The round trip goes through the server's own
 * `toGrpcError`, so the two sides cannot drift apart. No socket is opened.
 */
import { Metadata, status } from '@grpc/grpc-js';
import { pino } from 'pino';
import t from 'tap';
import { toGrpcError } from '../../../services/api/grpc-error-codec.ts';
import { classifyGrpcFailure } from '../../../services/client/grpc-errors.ts';
import {
  eventFromProto,
  nodeFromProto,
  segmentFromProto,
} from '../../../services/client/grpc-messages.ts';
import {
  ApiError,
  ClientError,
  createClient,
  errorFromGrpc,
} from '../../../services/client/index.ts';
import {
  AmalgamError,
  ERRORS,
  type ErrorCode,
  isAmalgamError,
} from '../../../services/core/errors.ts';

const logger = pino({ level: 'silent' });

t.test('every catalogue code survives the round trip through the trailers', async (t) => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const original = new AmalgamError(code, `detail of ${code}`, { field: 'x', count: 2 });
    const sent = toGrpcError(original, logger, 'Test/Method');
    const rebuilt = errorFromGrpc(sent);
    t.ok(rebuilt instanceof ApiError, code);
    t.ok(isAmalgamError(rebuilt, code), code);
    const api = rebuilt as ApiError;
    t.equal(api.message, original.message, code);
    t.same(api.details, { field: 'x', count: 2 }, code);
    t.equal(api.status, ERRORS[code].http, code);
    t.equal(api.grpc, sent.code, code);
  }
});

t.test('the code decides, not the gRPC status; bad details JSON gives no details', async (t) => {
  const metadata = new Metadata();
  metadata.set('amalgam-code', 'NODE_NOT_FOUND');
  metadata.set('amalgam-details', '{not json');
  const err = errorFromGrpc({ code: status.UNKNOWN, details: 'whatever', metadata });
  t.ok(isAmalgamError(err, 'NODE_NOT_FOUND'));
  t.equal((err as ApiError).status, 404);
  t.same((err as ApiError).details, {});
  const failure = classifyGrpcFailure({ code: status.UNAVAILABLE, details: 'x', metadata });
  t.equal(failure.transportFailure, false, 'an answer with a code is never failed over');
});

t.test('NO_QUORUM is an answer (UNAVAILABLE with a code), not a transport failure', async (t) => {
  const sent = toGrpcError(new AmalgamError('NO_QUORUM'), logger, 'Nodes/Heartbeat');
  const failure = classifyGrpcFailure(sent);
  t.ok(isAmalgamError(failure.error, 'NO_QUORUM'));
  t.equal(failure.transportFailure, false);
  t.equal((failure.error as ApiError).status, 503);
});

t.test('no amalgam-code: transport failures and foreign answers', async (t) => {
  const refused = classifyGrpcFailure({
    code: status.UNAVAILABLE,
    details: 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1',
    metadata: new Metadata(),
  });
  t.ok(refused.error instanceof ClientError);
  t.equal(refused.error.code, 'UNAVAILABLE');
  t.equal(refused.transportFailure, true);
  t.equal(refused.notSent, true, 'the picker failed it: never sent');
  t.equal((refused.error as ClientError).details.sent, false);

  for (const [code, details] of [
    [status.UNAVAILABLE, 'Connection dropped'],
    [status.DEADLINE_EXCEEDED, 'Deadline exceeded after 1.001s'],
    [status.INTERNAL, 'Received RST_STREAM with code 2'],
  ] as const) {
    const failure = classifyGrpcFailure({ code, details });
    t.equal(failure.error.code, 'UNAVAILABLE', details);
    t.equal(failure.transportFailure, true, details);
    t.equal(failure.notSent, false, `${details}: may have been sent`);
  }

  const foreign = classifyGrpcFailure({ code: status.UNIMPLEMENTED, details: 'no such method' });
  t.equal(foreign.error.code, 'BAD_RESPONSE');
  t.equal(foreign.transportFailure, false);
});

t.test('proto messages map back to the contracts as REST answers them', async (t) => {
  const node = nodeFromProto({ name: 'a', labels: null, load: null, roles: [] });
  t.equal(node.lastHeartbeatAt, null);
  t.equal(node.load, null);
  t.same(node.labels, {});
  t.same(segmentFromProto({ id: 's', placement: { mode: 'spread', node: '' } }).placement, {
    mode: 'spread',
  });
  t.same(segmentFromProto({ id: 's', placement: { mode: 'pinned', node: 'b' } }).placement, {
    mode: 'pinned',
    node: 'b',
  });
  t.same(eventFromProto({ type: 'delete', key: 'nodes/a', valueJson: '', revision: 7 }), {
    type: 'delete',
    key: 'nodes/a',
    value: null,
    revision: 7,
  });
  t.same(eventFromProto({ type: 'put', key: 'k', valueJson: '{"x":1}', revision: 8 }).value, {
    x: 1,
  });
});

t.test('gRPC endpoints are host:port', async (t) => {
  t.throws(() => createClient({ transport: 'grpc', endpoints: ['https://x'], ca: '' }), {
    code: 'UNAVAILABLE',
  });
  t.throws(() => createClient({ transport: 'grpc', endpoints: [], ca: '' }), {
    code: 'UNAVAILABLE',
  });
});
