/**
 * A problem document becomes the server's AmalgamError again: same code, same
 * details, same message. The round trip goes through the REST transport's own
 * `problemFrom`, so the two sides cannot drift apart.
 */
import t from 'tap';
import { ApiError, ClientError, errorFromProblem } from '../../../services/client/index.ts';
import { problemFrom } from '../../../services/controlplane/rest/problem.ts';
import {
  AmalgamError,
  ERRORS,
  type ErrorCode,
  isAmalgamError,
} from '../../../services/core/errors.ts';

function overTheWire(error: AmalgamError): ApiError | ClientError {
  const request = { url: '/v1/things?x=1', id: 'req-7' } as Parameters<typeof problemFrom>[1];
  const body = JSON.parse(JSON.stringify(problemFrom(error, request)));
  return errorFromProblem(error.http, body);
}

t.test('every catalogue code survives the round trip', async (t) => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const original = new AmalgamError(code, `detail of ${code}`, { field: 'x', count: 2 });
    const rebuilt = overTheWire(original);
    t.ok(rebuilt instanceof ApiError, code);
    t.ok(isAmalgamError(rebuilt, code), code);
    const api = rebuilt as ApiError;
    t.equal(api.message, original.message, code);
    t.same(api.details, { field: 'x', count: 2 }, code);
    t.equal(api.status, original.http, code);
    t.equal(api.requestId, 'req-7', code);
    t.equal(api.retryable, original.retryable, code);
  }
});

t.test('an error without a detail keeps the catalogue message', async (t) => {
  const rebuilt = overTheWire(new AmalgamError('NO_QUORUM'));
  t.equal(rebuilt.message, ERRORS.NO_QUORUM.message);
});

t.test('a body that is not a problem with a known code is BAD_RESPONSE', async (t) => {
  for (const body of [undefined, 'text', { code: 'SOMETHING_NEW' }, { detail: 'bad gateway' }]) {
    const err = errorFromProblem(502, body, 'hdr-1');
    t.ok(err instanceof ClientError);
    t.equal((err as ClientError).code, 'BAD_RESPONSE');
    t.equal((err as ClientError).details.status, 502);
    t.equal((err as ClientError).details.requestId, 'hdr-1');
  }
});
