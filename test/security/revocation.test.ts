/**
 * Attacks on identities and joins, against one real clusterd (REST and gRPC)
 * with real node certificates from real joins:
 * - a removed node's certificate, on REST and gRPC (list, heartbeat): refused
 *   with CREDENTIAL_REVOKED within 5 s of the removal, a log line naming it;
 * - the old certificate after its name was joined again by a new key: its
 *   heartbeat for the name is refused, the new machine's works; a join with
 *   the removed key is refused;
 * - a token of N uses raced by N + 5 joins: exactly N nodes;
 * - a flood of joins from one address: 429 RATE_LIMITED with Retry-After,
 *   while another address is still served;
 * - one join asking for more than its share of the address space: 400
 *   naming the field.
 * Every refusal is asserted by its code, and by the log line that names it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { JoinRequest, LoadReport } from '../../services/api/contracts.ts';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { type JoinedNode, joinNode } from '../harness/node.ts';
import { until } from '../harness/until.ts';

const MiB = 1024 * 1024;
const LOAD: LoadReport = { load1: 0, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 0 };
/** Joins one address may make at once: above what the other tests make from 127.0.0.1. */
const BURST = 30;

const cd = await startClusterdReplicas({
  store: { backend: 'embedded' },
  grpc: true,
  // A bucket that barely refills: the flood below meets the limit deterministically.
  extraConfig: { join: { burst: BURST, ratePerSecond: 0.01 } },
});
const home = await mkdtemp(join(tmpdir(), 'amalgam-revocation-'));
const clients: AmalgamClient[] = [];
t.teardown(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cd.destroy();
  await rm(home, { recursive: true, force: true });
});

const admin = createClient({ endpoints: cd.urls, ...cd.admin });
const anonymous = createClient({ endpoints: cd.urls, ca: cd.admin.ca });
clients.push(admin, anonymous);

/** The node's REST and gRPC clients, with its certificate. */
function clientsOf(node: JoinedNode): { rest: AmalgamClient; grpc: AmalgamClient } {
  const credential = { ca: cd.admin.ca, cert: node.joined.certificate, key: node.keyPem };
  const rest = createClient({ endpoints: cd.urls, ...credential });
  const grpc = createClient({ transport: 'grpc', endpoints: cd.grpcUrls, ...credential });
  clients.push(rest, grpc);
  return { rest, grpc };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

function logMentions(text: string): boolean {
  return cd.logTail(0).includes(text);
}

async function joinRequest(token: string, name: string, keyPem?: string): Promise<JoinRequest> {
  const { csrPem } = await createKeyAndCsr({
    commonName: name,
    ...(keyPem === undefined ? {} : { keyPem }),
  });
  return {
    token,
    name,
    csr: csrPem,
    capacity: {
      memoryBytes: 64 * MiB,
      swapBytes: 0,
      contributedBytes: 16 * MiB,
      cpus: 1,
      cpuSpeed: 1,
    },
  };
}

t.test(
  'a removed node is refused on REST and gRPC within 5 s; its name re-joins only with a new key',
  async (t) => {
    const a = await joinNode(cd, 'a', { home: join(home, 'a'), contributedBytes: 16 * MiB });
    await joinNode(cd, 'b', { home: join(home, 'b'), contributedBytes: 16 * MiB });
    const old = clientsOf(a);
    await old.rest.nodes.heartbeat('a', LOAD);
    await old.grpc.nodes.heartbeat('a', LOAD);
    t.equal((await old.rest.nodes.list()).length, 2, 'a member lists the cluster');
    t.equal((await old.grpc.nodes.list()).length, 2);

    await admin.nodes.remove('a');
    const removedAt = Date.now();
    // Every door, every call: refused with the one code (waited for, never slept on).
    const refused = async () => {
      const codes = await Promise.all([
        codeOf(old.rest.nodes.list()),
        codeOf(old.rest.nodes.heartbeat('a', LOAD)),
        codeOf(old.grpc.nodes.list()),
        codeOf(old.grpc.nodes.heartbeat('a', LOAD)),
      ]);
      return codes.every((c) => c === 'CREDENTIAL_REVOKED') ? codes : undefined;
    };
    t.same(await until('the removed certificate refused everywhere', refused, 5_000), [
      'CREDENTIAL_REVOKED',
      'CREDENTIAL_REVOKED',
      'CREDENTIAL_REVOKED',
      'CREDENTIAL_REVOKED',
    ]);
    t.ok(Date.now() - removedAt < 5_000 * 3, `refused ${Date.now() - removedAt} ms after removal`);
    await until('a log line names the revoked credential', () =>
      logMentions('credential revoked: node:a'),
    );
    // Other members are unaffected.
    t.ok((await admin.nodes.list()).some((n) => n.name === 'b'));

    // The freed name, joined again by a new machine (a new key).
    const again = await joinNode(cd, 'a', { home: join(home, 'a2'), contributedBytes: 16 * MiB });
    t.not(again.joined.node.identity, a.joined.node.identity, 'a new key');
    t.equal(again.joined.rejoined, false, 'a new node, not the old one back');
    const fresh = clientsOf(again);
    t.equal((await fresh.rest.nodes.heartbeat('a', LOAD)).name, 'a', 'the new machine beats');
    t.equal((await fresh.grpc.nodes.heartbeat('a', LOAD)).name, 'a');
    t.equal(
      await codeOf(old.rest.nodes.heartbeat('a', LOAD)),
      'CREDENTIAL_REVOKED',
      'old cert, REST',
    );
    t.equal(
      await codeOf(old.grpc.nodes.heartbeat('a', LOAD)),
      'CREDENTIAL_REVOKED',
      'old cert, gRPC',
    );

    // The removed key never joins again, under any name.
    const { token } = await admin.tokens.create({ description: 'old key' });
    for (const name of ['a', 'a-old']) {
      t.equal(
        await codeOf(anonymous.nodes.join(await joinRequest(token, name, a.keyPem))),
        'CREDENTIAL_REVOKED',
        `join as ${name} with the removed key`,
      );
    }
    t.notOk(
      (await admin.nodes.list()).some((n) => n.name === 'a-old'),
      'nothing was claimed',
    );
    await until('a log line names the refused join', () =>
      logMentions('"code":"CREDENTIAL_REVOKED"'),
    );
  },
);

t.test('a token of N uses raced by N + 5 joins: exactly N join', async (t) => {
  const maxUses = 3;
  const token = await admin.tokens.create({ maxUses, description: 'three machines' });
  t.equal(token.maxUses, maxUses);
  t.equal(token.uses, 0);
  const requests = await Promise.all(
    Array.from({ length: maxUses + 5 }, (_, i) => joinRequest(token.token, `race-${i}`)),
  );
  const results = await Promise.allSettled(requests.map((r) => anonymous.nodes.join(r)));
  const joined = results.filter((r) => r.status === 'fulfilled');
  const codes = results.flatMap((r) =>
    r.status === 'rejected' ? [(r.reason as { code?: string }).code] : [],
  );
  t.equal(joined.length, maxUses, 'exactly maxUses joins succeed');
  t.same(codes, Array(5).fill('TOKEN_EXHAUSTED'), 'every other one is TOKEN_EXHAUSTED');
  const nodes = (await admin.nodes.list()).filter((n) => n.name.startsWith('race-'));
  t.equal(nodes.length, maxUses, 'no node beyond the token');
  const listed = (await admin.tokens.list()).find((v) => v.id === token.id);
  t.same({ uses: listed?.uses, maxUses: listed?.maxUses }, { uses: maxUses, maxUses });
  await until('a log line names the exhausted token', () =>
    logMentions('"code":"TOKEN_EXHAUSTED"'),
  );
  const unlimited = await admin.tokens.create({});
  t.equal(unlimited.maxUses, null, "kubeadm's default: any number until it expires");
});

t.test('one join asks for more than its share of the space: 400 naming the field', async (t) => {
  const { token } = await admin.tokens.create({});
  const greedy = await joinRequest(token, 'greedy');
  greedy.capacity.contributedBytes = 2 * 2 ** 40; // 2 TiB, over the 1 TiB default
  try {
    await anonymous.nodes.join(greedy);
    t.fail('joined');
  } catch (err) {
    t.match(err, { code: 'INVALID_ARGUMENT', details: { field: 'capacity.contributedBytes' } });
  }
  t.notOk(
    (await admin.nodes.list()).some((n) => n.name === 'greedy'),
    'nothing was claimed',
  );
  await until('a log line names the refusal', () => logMentions('capacity.contributedBytes'));
});

/** A join POST from `localAddress` (any 127/8 address reaches clusterd on loopback). */
function joinFrom(
  localAddress: string,
  body: object,
): Promise<{ status: number; code?: string; retryAfter?: string }> {
  const url = new URL('/v1/join', cd.urls[0]);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: cd.admin.ca,
        localAddress,
        servername: 'localhost',
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          resolve({
            status: res.statusCode ?? 0,
            code: text ? (JSON.parse(text) as { code?: string }).code : undefined,
            ...(typeof retryAfter === 'string' ? { retryAfter } : {}),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function scrape(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL('/metrics', cd.urls[0]),
      { ca: cd.admin.ca, servername: 'localhost' },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve(text));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

t.test(
  'a flood of joins from one address: 429 with Retry-After, others still served',
  async (t) => {
    // A well-formed join with a token that does not exist: each attempt costs
    // clusterd a lookup, and counts against its address.
    const body = await joinRequest('zzzzzz.0123456789abcdef', 'flood');
    for (let i = 0; i < BURST; i++) {
      const answer = await joinFrom('127.0.0.3', body);
      if (answer.status !== 401) t.fail(`attempt ${i}: ${answer.status} ${answer.code}`);
    }
    const limited = await joinFrom('127.0.0.3', body);
    t.equal(limited.status, 429);
    t.equal(limited.code, 'RATE_LIMITED');
    t.ok(Number(limited.retryAfter) >= 1, `Retry-After: ${limited.retryAfter}`);
    const other = await joinFrom('127.0.0.4', body);
    t.same({ status: other.status, code: other.code }, { status: 401, code: 'TOKEN_NOT_FOUND' });
    // Members' calls are not joins: served meanwhile.
    t.ok((await admin.nodes.list()).length > 0);
    await until('a log line names the limit', () => logMentions('"code":"RATE_LIMITED"'));
    const metrics = await scrape();
    t.match(metrics, /^amalgam_join_rate_limited_total [1-9]/m, 'counted in /metrics');
    t.match(metrics, /^amalgam_join_rate_limiter_sources [1-9]/m);
  },
);
