/** What the client refuses before it opens any connection. */
import t from 'tap';
import { ClientError, createClient, discoverCa } from '../../../services/client/index.ts';

t.test('endpoints must be given, and https', async (t) => {
  for (const endpoints of [[], ['http://127.0.0.1:6443'], ['not a url']]) {
    t.throws(() => createClient({ endpoints, ca: '' }), ClientError, JSON.stringify(endpoints));
  }
});

t.test('CA discovery needs an https URL', async (t) => {
  await t.rejects(discoverCa('http://127.0.0.1:6443'), { code: 'CA_DISCOVERY_FAILED' });
  await t.rejects(discoverCa('::'), { code: 'CA_DISCOVERY_FAILED' });
});
