/** The Store contract on the etcd backend, against a real 3-member etcd cluster. */
import t from 'tap';
import { EtcdStore } from '../../services/store/etcd-store.ts';
import { startEtcdCluster } from '../harness/etcd-cluster.ts';
import { storeContract } from './store-contract.ts';

const cluster = await startEtcdCluster({ size: 3 });
t.teardown(() => cluster.destroy());

storeContract(t, {
  name: 'etcd (3 members)',
  concurrentClients: 20,
  client: async () => new EtcdStore(cluster.storeOptions()),
});
