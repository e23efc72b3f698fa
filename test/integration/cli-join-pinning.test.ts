/**
 * `clusteradm join` pins the CA before it sends anything: against a fake
 * clusterd that records every request, a wrong --ca-cert-hash ends the join
 * after the TLS handshake with ZERO requests received (so the token never left
 * the machine); the right hash sends exactly the join, and the node's files
 * are written. A second join from the same home is the same key (identity).
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { JoinRequest, JoinResult, NodeView } from '../../services/api/contracts.ts';
import { nodeSubject, signCsr, verifyCsr } from '../../services/pki/index.ts';
import {
  createTestPki,
  type FakeHandler,
  type FakeServer,
  type FakeServerOptions,
  type RecordedRequest,
  runCli,
  runCliInProcess,
  startFakeServer,
  type TestPki,
} from './cli-fixtures.ts';

const TOKEN = 'abcdef.0123456789abcdef';

async function tempHome(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-join-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'node-home');
}

function joinHandler(pki: TestPki): FakeHandler {
  return async (request: RecordedRequest) => {
    if (request.method !== 'POST' || request.path !== '/v1/join') {
      return { status: 404, body: { code: 'NOT_FOUND', status: 404 } };
    }
    const body = JSON.parse(request.body) as JoinRequest;
    const certificate = await signCsr(pki.ca, body.csr, {
      ...nodeSubject(body.name),
      usages: ['client', 'server'],
      validityDays: 1,
    });
    const node: NodeView = {
      name: body.name,
      roles: [],
      labels: {},
      capacity: body.capacity,
      state: 'Joining',
      range: { start: 2 * 1024 * 1024, size: body.capacity.contributedBytes },
      identity: (await verifyCsr(body.csr)).publicKeyHash,
      joinedAt: new Date().toISOString(),
      lastHeartbeatAt: null,
      load: null,
      pageserver: null,
    };
    const result: JoinResult = {
      node,
      certificate,
      caCertificate: pki.ca.certPem,
      rejoined: false,
    };
    return { status: 201, body: result };
  };
}

async function startJoinServer(
  t: Test,
  pki: TestPki,
  options: FakeServerOptions = {},
): Promise<FakeServer> {
  const fake = await startFakeServer(pki, joinHandler(pki), options);
  t.teardown(() => fake.close());
  return fake;
}

const joinArgs = (url: string, hash: string, home: string): string[] => [
  'join',
  url,
  '--token',
  TOKEN,
  '--ca-cert-hash',
  hash,
  '--name',
  'node-a',
  '--home',
  home,
  '--contribute',
  '64Mi',
  '--no-agent',
];

t.test('a wrong --ca-cert-hash aborts after the handshake: zero requests', async (t) => {
  const pki = await createTestPki();
  const impostor = await createTestPki();
  const fake = await startJoinServer(t, pki);
  const home = await tempHome(t);

  const run = await runCli(joinArgs(fake.url, impostor.caCertHash, home));

  t.equal(run.code, 1, run.stderr);
  t.match(run.stderr, /^error: CA_HASH_MISMATCH: /m);
  t.equal(fake.requests.length, 0, 'the fake received no HTTP request at all');
  t.ok(fake.connections >= 1, 'the chain was read from a TLS handshake');
  t.same(await readdir(home).catch(() => []), [], 'no key was made for a cluster not trusted');
});

t.test('a server that does not present its CA gets nothing either', async (t) => {
  const pki = await createTestPki();
  const fake = await startJoinServer(t, pki, { presentCa: false });
  const home = await tempHome(t);

  const run = await runCliInProcess(joinArgs(fake.url, pki.caCertHash, home));

  t.equal(run.code, 1, run.stderr);
  t.match(run.stderr, /^error: CA_DISCOVERY_FAILED: /m);
  t.equal(fake.requests.length, 0);
});

t.test(
  'the right hash sends the join over a verified connection and writes the files',
  async (t) => {
    const pki = await createTestPki();
    const fake = await startJoinServer(t, pki);
    const home = await tempHome(t);

    const first = await runCli([...joinArgs(fake.url, pki.caCertHash, home), '-o', 'json']);
    t.equal(first.code, 0, first.stderr);
    t.equal(fake.requests.length, 1, 'exactly one request: the join');
    const [request] = fake.requests as [RecordedRequest];
    t.equal(request.method, 'POST');
    t.equal(request.path, '/v1/join');
    t.equal(request.clientCn, undefined, 'no client certificate: the token authenticates');
    const sent = JSON.parse(request.body) as JoinRequest;
    t.equal(sent.token, TOKEN);
    t.equal(sent.name, 'node-a');
    t.equal(sent.capacity.contributedBytes, 64 * 1024 * 1024);
    t.ok(sent.capacity.memoryBytes > 0 && sent.capacity.cpus >= 1);

    const output = JSON.parse(first.stdout) as { node: NodeView; agentConfig: string };
    t.equal(output.node.name, 'node-a');
    const agent = JSON.parse(await readFile(join(home, 'agent.json'), 'utf8'));
    t.same(agent, {
      server: [fake.url],
      name: 'node-a',
      certFile: join(home, 'node.crt'),
      keyFile: join(home, 'node.key'),
      caFile: join(home, 'ca.crt'),
    });
    t.equal((await stat(join(home, 'node.key'))).mode & 0o777, 0o600, 'the key is private');
    t.equal(await readFile(join(home, 'ca.crt'), 'utf8'), pki.ca.certPem);
    t.match(await readFile(join(home, 'node.crt'), 'utf8'), /BEGIN CERTIFICATE/);

    // Joining again from the same home is the same key, so the same identity.
    const second = await runCliInProcess(joinArgs(fake.url, pki.caCertHash, home));
    t.equal(second.code, 0, second.stderr);
    t.match(second.stderr, /reusing the key/);
    const csrs = fake.requests.map((r) => (JSON.parse(r.body) as JoinRequest).csr);
    const [a, b] = await Promise.all(csrs.map((csr) => verifyCsr(csr)));
    t.equal(a?.publicKeyHash, b?.publicKeyHash);
  },
);

t.test("the server's refusal is one line with its code, exit 1", async (t) => {
  const pki = await createTestPki();
  const fake = await startFakeServer(pki, () => ({
    status: 401,
    body: {
      type: 'https://amalgam.dev/errors/TOKEN_EXPIRED',
      title: 'the bootstrap token has expired',
      status: 401,
      code: 'TOKEN_EXPIRED',
      detail: 'the bootstrap token has expired: token abcdef',
      requestId: 'req-1',
      tokenId: 'abcdef',
    },
  }));
  t.teardown(() => fake.close());
  const home = await tempHome(t);

  const run = await runCli(joinArgs(fake.url, pki.caCertHash, home));

  t.equal(run.code, 1);
  t.match(
    run.stderr,
    /^error: TOKEN_EXPIRED: the bootstrap token has expired: token abcdef \(request req-1\)$/m,
  );
  t.equal(fake.requests.length, 1);
});
