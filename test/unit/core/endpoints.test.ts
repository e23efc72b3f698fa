/**
 * core/endpoints.ts: a page server published on a loopback or unspecified
 * address is refused (INVALID_ARGUMENT naming pageserver.host) unless the
 * cluster is one machine.
 */
import t from 'tap';
import {
  checkPublishedEndpoint,
  endpointHost,
  isLocalOnlyHost,
  isLoopbackHost,
} from '../../../services/core/endpoints.ts';
import { isAmalgamError } from '../../../services/core/errors.ts';

t.test('hosts that reach only the resolving machine', async (t) => {
  for (const h of [
    '127.0.0.1',
    '127.1.2.3',
    '0.0.0.0',
    '::1',
    '::',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    '::ffff:0.0.0.0',
    'localhost',
    'LOCALHOST',
    'a.localhost',
    'localhost.',
  ])
    t.ok(isLocalOnlyHost(h), h);
  for (const h of [
    '10.0.0.1',
    '128.0.0.1',
    '::ffff:10.0.0.1',
    '1::',
    'fe80::1',
    '2001:db8::1',
    'node-a',
    'localhost.example',
  ])
    t.notOk(isLocalOnlyHost(h), h);
  t.equal(endpointHost('[::1]:7070'), '::1');
  // a listener: loopback reaches this machine only, the unspecified address every interface
  for (const h of ['127.0.0.1', '::1', 'localhost']) t.ok(isLoopbackHost(h), `${h} is loopback`);
  for (const h of ['0.0.0.0', '::', '10.0.0.1']) t.notOk(isLoopbackHost(h), `${h} is not loopback`);
  t.equal(endpointHost('Node-A:7070'), 'node-a');
});

t.test('heartbeat endpoints: loopback refused unless single-machine', async (t) => {
  const cluster = { singleMachine: false };
  for (const address of ['127.0.0.1:7070', '[::1]:7070', 'localhost:1', '0.0.0.0:7070']) {
    let caught: unknown;
    try {
      checkPublishedEndpoint({ address }, cluster);
    } catch (err) {
      caught = err;
    }
    t.ok(isAmalgamError(caught, 'INVALID_ARGUMENT'), `${address} refused`);
    if (isAmalgamError(caught)) t.equal(caught.details.field, 'pageserver.host');
  }
  t.doesNotThrow(() => checkPublishedEndpoint({ address: '10.0.0.7:7070' }, cluster));
  t.doesNotThrow(() => checkPublishedEndpoint({ address: '[2001:db8::1]:7070' }, cluster));
  t.doesNotThrow(() =>
    checkPublishedEndpoint({ address: '127.0.0.1:7070' }, { singleMachine: true }),
  );
});
