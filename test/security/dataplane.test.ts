/**
 * The data plane checks who it talks to (issue 14). Each attack fails as
 * stated, with its log line:
 * 1. netmem-tool whose route names node b but points at node a's page server:
 *    refused at the handshake (exit 1, EACCES, "expected node:b, the
 *    certificate of node:a answered"), and a's memory is unchanged.
 * 2. a mapping in the same situation: the access gets SIGBUS with that line.
 * 3. remotedev: a tree entry for b pointing at a's page server: EIO, no byte
 *    written to a's device (the entry for a still works).
 * 4. a page server with --peers refuses a node not listed at the handshake,
 *    keeps serving the admin, and closes a node's open connection and refuses
 *    its new ones once a SIGHUP'd file no longer lists it.
 * 5. 10,000 idle connections are bounded by the connection cap and the
 *    handshake timeout while a legitimate client's request still succeeds.
 * 6. a node removed from a real cluster: the agent of another node rewrites
 *    its page server's --peers from its watch, and the removed node's open
 *    connection is closed and its new one refused within seconds.
 * 7. a heartbeat that publishes a loopback or unspecified page-server address
 *    is 400 INVALID_ARGUMENT naming pageserver.host (logged), unless the
 *    cluster is configured single-machine.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { certificateKeyHash } from '../../services/agent/page-server-peers.ts';
import { createClient } from '../../services/client/index.ts';
import { PageServerClient } from '../../services/client/pageserver-client.ts';
import { createClusterCa, issueAdminCredential } from '../../services/pki/index.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { type NativePageServer, startNativePageServer } from '../harness/native.ts';
import { joinNode, joinNodeWithAgent } from '../harness/node.ts';
import { nodeCertificateFiles, writePrivateFile } from '../harness/pki.ts';
import { until } from '../harness/until.ts';
import {
  BUILD,
  buildNetmem,
  killedAtTeardown,
  MAP_TEST,
  runProgram,
} from '../integration/netmem-map-fixtures.ts';
import {
  createImage,
  type Mount,
  remotedevBinaries,
  sh,
  startMount,
  stopMount,
} from '../integration/remotedev-fixtures.ts';
import { startHarness } from '../unit/controlplane/rest/rest-harness.ts';

const MiB = 1024 * 1024;
const START = 0x4000_0000;
const SIZE = 16 * MiB;
const hex = (n: number) => `0x${n.toString(16)}`;
const NETMEM_TOOL = join(BUILD, 'netmem-tool');
const WRONG_NODE = /expected node:b, the certificate of node:a answered/;

buildNetmem();
const bins = remotedevBinaries();
const children = killedAtTeardown(t);
const dir = mkdtempSync(join(tmpdir(), `amalgam-sec-dataplane-${process.pid}-`));
const servers: NativePageServer[] = [];
const mounts: Mount[] = [];
t.teardown(async () => {
  for (const m of mounts) await stopMount(m);
  for (const s of servers) await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ca = await createClusterCa();
const caFile = writePrivateFile(dir, 'ca.crt', ca.certPem);
const a = await nodeCertificateFiles(ca, 'a', dir);
const b = await nodeCertificateFiles(ca, 'b', dir);
const c = await nodeCertificateFiles(ca, 'c', dir);
const pem = (f: { cert: string; key: string }) => ({
  ca: ca.certPem,
  cert: readFileSync(f.cert, 'utf8'),
  key: readFileSync(f.key, 'utf8'),
});
const tlsOf = (f: { cert: string; key: string }) => [
  '--tls-cert',
  f.cert,
  '--tls-key',
  f.key,
  '--tls-ca',
  caFile,
];
const range = ['--range-start', hex(START), '--range-size', String(SIZE)];

// Node a's page server: its range and one device, disk0.
const imageA = join(dir, 'a-disk0.img');
createImage(imageA, 4 * MiB);
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const imageBefore = sha(imageA);
const devicesA = writePrivateFile(dir, 'devices-a', `disk0 rw ${imageA}\n`);
const serverA = await startNativePageServer([...tlsOf(a), ...range, '--devices', devicesA]);
servers.push(serverA);

/** netmem-tool as node c: exit code, stdout, stderr. */
function netmemTool(route: string, ...command: string[]) {
  const args = ['--timeout-ms', '5000', ...tlsOf(c), '--route', route, ...command];
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(NETMEM_TOOL, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

t.test(
  'netmem: a route for b pointing at a page server of a is refused, nothing written',
  async (t) => {
    const right = `${hex(START)}:${SIZE}=a@${serverA.address}`;
    const wrong = `${hex(START)}:${SIZE}=b@${serverA.address}`;
    const put = await netmemTool(right, 'write', hex(START), 'cafebabe');
    t.equal(put.code, 0, `the right route writes: ${put.stderr}`);
    const attack = await netmemTool(wrong, 'write', hex(START), 'deadbeef');
    t.equal(attack.code, 1, 'netmem-tool fails');
    t.match(attack.stderr, /write: Permission denied/, 'EACCES');
    t.match(
      attack.stderr,
      WRONG_NODE,
      'the log line names the node expected and the one that answered',
    );
    const back = await netmemTool(right, 'read', hex(START), '4');
    t.equal(back.stdout.trim(), 'cafebabe', "a's memory is unchanged");
  },
);

t.test('netmem_map: the mapped access gets SIGBUS with the log line', async (t) => {
  const r = await runProgram(MAP_TEST, ['wait-scan', hex(START), String(SIZE)], {
    env: {
      NETMEM_ROUTES: `${hex(START)}:${SIZE}=b@${serverA.address}`,
      NETMEM_TIMEOUT_MS: '3000',
      NETMEM_TLS_CERT: c.cert,
      NETMEM_TLS_KEY: c.key,
      NETMEM_TLS_CA: caFile,
    },
    children,
    guardMs: 60_000,
  });
  t.equal(r.signal, 'SIGBUS', `killed by SIGBUS (code ${r.code}, stderr: ${r.stderr})`);
  t.match(r.stderr, /EACCES/);
  t.match(r.stderr, WRONG_NODE);
});

t.test(
  "remotedev: a tree entry for b pointing at a's page server gets EIO, a's device untouched",
  async (t) => {
    const tree = writePrivateFile(
      dir,
      'tree',
      `a disk0 ${4 * MiB} rw ${serverA.address} tls\nb disk0 ${4 * MiB} rw ${serverA.address} tls\n`,
    );
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const m = await startMount(bins.fuse, mnt, tree, [
      '--cert',
      c.cert,
      '--key',
      c.key,
      '--ca',
      caFile,
      '--timeout-ms',
      '3000',
    ]);
    mounts.push(m);
    const data = join(dir, 'data');
    writeFileSync(data, Buffer.alloc(64 * 1024, 0x5a));
    const attack = await sh('dd', [
      `if=${data}`,
      `of=${join(mnt, 'b', 'disk0')}`,
      'bs=64k',
      'conv=notrunc,fsync',
      'status=none',
    ]);
    t.not(attack.code, 0, 'the write through /remotedev/b/disk0 fails');
    t.match(attack.stderr, /Input\/output error/, 'EIO');
    t.match(m.stderr(), /for node b failed: expected node:b, the certificate of node:a answered/);
    t.equal(sha(imageA), imageBefore, "no byte reached a's device");
    const own = await sh('dd', [
      `if=${join(mnt, 'a', 'disk0')}`,
      'of=/dev/null',
      'bs=64k',
      'count=1',
    ]);
    t.equal(own.code, 0, `the entry for a still reads: ${own.stderr}`);
  },
);

/** A request through a fresh TLS connection as `who`: the bytes, or the error. */
async function readAs(server: NativePageServer, who: ReturnType<typeof pem>, node = 'a') {
  const client = await PageServerClient.connect('127.0.0.1', server.port, {
    tls: { ...who, node },
  });
  try {
    return await client.read(START, 8);
  } finally {
    await client.close();
  }
}

t.test(
  '--peers: unlisted nodes refused at the handshake, revoked ones dropped on SIGHUP',
  async (t) => {
    const peersFile = join(dir, 'peers');
    const line = (name: string, f: { cert: string }) =>
      `node:${name} ${certificateKeyHash(readFileSync(f.cert, 'utf8'))}\n`;
    writeFileSync(peersFile, `# test\n${line('a', a)}${line('b', b)}`);
    const server = await startNativePageServer([...tlsOf(a), ...range, '--peers', peersFile]);
    servers.push(server);

    await t.rejects(readAs(server, pem(c)), 'node c (not listed) gets nothing');
    await until('the refusal is logged', () =>
      /TLS client refused: node:c with key sha256:[0-9a-f]{64} is not an allowed peer/.test(
        server.stderr(),
      ),
    );
    const admin = await issueAdminCredential(ca);
    t.equal(
      (await readAs(server, { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem })).length,
      8,
      'the admin is served',
    );

    const held = await PageServerClient.connect('127.0.0.1', server.port, {
      tls: { ...pem(b), node: 'a' },
    });
    t.teardown(() => held.close());
    t.equal((await held.read(START, 8)).length, 8, 'node b (listed) is served');

    writeFileSync(peersFile, line('a', a)); // b removed
    server.child.kill('SIGHUP');
    await until('the revoked connection is closed', () =>
      /node:b \(key sha256:[0-9a-f]{64}\) is no longer an allowed peer: connection closed/.test(
        server.stderr(),
      ),
    );
    await t.rejects(held.read(START, 8), "b's open connection is gone");
    await t.rejects(readAs(server, pem(b)), "b's new connection is refused");
    t.match(server.stderr(), /node:b with key .* is not an allowed peer/);
  },
);

t.test('10,000 idle connections are bounded; a member is still served', async (t) => {
  const cap = 1000;
  const server = await startNativePageServer([
    ...tlsOf(a),
    ...range,
    '--max-connections',
    String(cap),
    '--handshake-timeout-ms',
    '2000',
    '--idle-timeout-ms',
    '5000',
  ]);
  servers.push(server);
  const sockets: Socket[] = [];
  let closedByServer = 0;
  t.teardown(() => {
    for (const s of sockets) s.destroy();
  });
  const t0 = Date.now();
  for (let i = 0; i < 10_000; i++) {
    const s = connect({ host: '127.0.0.1', port: server.port });
    s.on('error', () => {});
    s.on('close', () => {
      closedByServer++;
    });
    sockets.push(s);
    if (i % 500 === 499) await new Promise((r) => setImmediate(r));
  }
  // A member's request meanwhile: it may have to wait for the handshake timeout to free slots.
  const reqStart = Date.now();
  const bytes = await until('a member is served during the flood', async () => {
    const client = await PageServerClient.connect('127.0.0.1', server.port, {
      tls: { ...pem(b), node: 'a' },
    });
    try {
      const stats = await client.stat();
      t.ok(
        stats.connectionsOpen <= BigInt(cap),
        `open connections ${stats.connectionsOpen} <= ${cap}`,
      );
      return await client.read(START, 8);
    } finally {
      await client.close();
    }
  });
  t.equal(bytes.length, 8);
  t.comment(
    `a member's request completed ${Date.now() - reqStart} ms after the flood of 10,000 connections (flood opened in ${reqStart - t0} ms)`,
  );
  await until(
    'every idle connection is closed by the server',
    () => closedByServer === 10_000,
    120_000,
  );
  t.match(server.stderr(), /connection cap reached \(\d+ open, --max-connections 1000\)/);
  t.match(server.stderr(), /closed \d+ connection\(s\) whose handshake took over 2000 ms/);
});

t.test("a removed node's certificate is refused by a live agent's page server", async (t) => {
  const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
  t.teardown(() => cd.destroy());
  const admin = createClient({ endpoints: cd.urls, ...cd.admin });
  t.teardown(() => admin.close());
  const nodeA = await joinNodeWithAgent(cd, 'a', {
    home: join(dir, 'cluster-a'),
    contributedBytes: SIZE,
    pageserver: { binary: bins.pageserver },
  });
  t.teardown(async () => {
    await nodeA.agent.close();
    await nodeA.client.close();
  });
  const nodeB = await joinNode(cd, 'b', { home: join(dir, 'cluster-b'), contributedBytes: SIZE });
  const asB = {
    ca: nodeB.joined.caCertificate,
    cert: nodeB.joined.certificate,
    key: nodeB.keyPem,
    node: 'a',
  };
  const ps = await until('a runs its page server', () => nodeA.agent.pageServer() ?? undefined);
  const start = ps.range.start;
  const connectB = () => PageServerClient.connect('127.0.0.1', ps.port, { tls: asB });
  // b joined after a's agent started: a learns b's key from its watch of nodes/.
  const held = await until("b is in a's peers", async () => {
    const client = await connectB();
    try {
      await client.read(start, 8);
      return client;
    } catch (err) {
      await client.close();
      throw err;
    }
  });
  t.teardown(() => held.close());
  const keyB = certificateKeyHash(nodeB.joined.certificate);
  t.ok(nodeA.agent.peers?.allows('node:b', keyB), "the agent's allowed set has b with its key");

  await admin.nodes.remove('b');
  const removedAt = Date.now();
  await until(
    "b's open connection to a's page server is closed",
    async () => {
      try {
        await held.read(start, 8);
        return false;
      } catch {
        return true;
      }
    },
    5000,
  );
  await t.rejects(
    (async () => {
      const client = await connectB();
      try {
        await client.read(start, 8);
      } finally {
        await client.close();
      }
    })(),
    "b's new connection is refused",
  );
  t.notOk(nodeA.agent.peers?.allows('node:b', keyB), 'the allowed set no longer has b');
  t.comment(`b refused ${Date.now() - removedAt} ms after its removal`);
  const own = await PageServerClient.connect('127.0.0.1', ps.port, {
    tls: { ...nodeA.tls, node: 'a' },
  });
  t.equal((await own.read(start, 8)).length, 8, 'a itself is still served');
  await own.close();
});

t.test(
  'a heartbeat publishing a loopback page server is refused unless single-machine',
  async (t) => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const h = await startHarness(t, { singleMachine: false, logger });
    await h.join('node-a');
    const load = { load1: 0.1, load5: 0.1, load15: 0.1, memoryUsedBytes: 1, processes: 1 };
    const beat = (address: string) =>
      h.call('node:node-a', {
        method: 'POST',
        url: '/v1/nodes/node-a/heartbeat',
        payload: { ...load, pageserver: { address, tls: true } },
      });
    for (const address of ['127.0.0.1:7070', '[::1]:7070', 'localhost:7070', '0.0.0.0:7070']) {
      const r = await beat(address);
      t.equal(r.statusCode, 400, `${address}: 400`);
      t.equal(r.json().code, 'INVALID_ARGUMENT');
      t.match(r.json().detail ?? r.body, /pageserver\.host/, 'the problem names pageserver.host');
    }
    t.ok(
      lines.some((l) => /INVALID_ARGUMENT/.test(l) && /pageserver\.host/.test(l)),
      'a log line names the refusal',
    );
    const ok = await beat('10.0.0.7:7070');
    t.equal(ok.statusCode, 200, 'a routable address is accepted');
    t.equal(ok.json().pageserver?.address, '10.0.0.7:7070');

    const single = await startHarness(t, { singleMachine: true });
    await single.join('node-a');
    const local = await single.call('node:node-a', {
      method: 'POST',
      url: '/v1/nodes/node-a/heartbeat',
      payload: { ...load, pageserver: { address: '127.0.0.1:7070', tls: true } },
    });
    t.equal(local.statusCode, 200, 'singleMachine: true allows loopback');
  },
);
