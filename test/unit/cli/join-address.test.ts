/**
 * `clusteradm join` picks the page server's address as the local end of a
 * connection to clusterd: a one-machine cluster (clusterd on loopback) keeps
 * the page server on loopback (undefined: the agent's default), and on a real
 * interface the page server publishes that interface's address (a loopback
 * one would be refused in heartbeats).
 */
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import t from 'tap';
import { localAddressTowards } from '../../../services/cli/join.ts';

async function listen(host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

t.test('clusterd on loopback: the page server keeps its loopback default', async (t) => {
  const { server, port } = await listen('127.0.0.1');
  t.teardown(() => server.close());
  t.equal(await localAddressTowards(`https://127.0.0.1:${port}`), undefined);
});

t.test('clusterd unreachable: no guess (join fails on its own)', async (t) => {
  const { server, port } = await listen('127.0.0.1');
  await new Promise((resolve) => server.close(resolve));
  t.equal(await localAddressTowards(`https://127.0.0.1:${port}`), undefined);
});

const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal);

t.test('clusterd on an interface: that interface address', async (t) => {
  // Every test machine has loopback; one without another interface has nothing more to show.
  if (!external) {
    t.pass('no non-loopback IPv4 interface on this machine');
    return;
  }
  const { server, port } = await listen(external.address);
  t.teardown(() => server.close());
  t.equal(await localAddressTowards(`https://${external.address}:${port}`), external.address);
});
