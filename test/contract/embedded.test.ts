/** The Store contract on the embedded backend (one process, fsynced WAL). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openEmbeddedStore } from '../../services/store/embedded-store.ts';
import type { Store } from '../../services/store/store.ts';
import { storeContract } from './store-contract.ts';

const dataDir = await mkdtemp(join(tmpdir(), 'amalgam-contract-embedded-'));
const store = await openEmbeddedStore({ dataDir });
t.teardown(async () => {
  await store.close();
  await rm(dataDir, { recursive: true, force: true });
});

/**
 * The embedded store lives in one process, so its "clients" are callers
 * sharing the one instance; closing a client must not close the store.
 */
function client(): Store {
  return new Proxy(store, {
    get: (target, prop) => {
      if (prop === 'close') return async () => {};
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

storeContract(t, {
  name: 'embedded',
  concurrentClients: 20,
  client: async () => client(),
});
