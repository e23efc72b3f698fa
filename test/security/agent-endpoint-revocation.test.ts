/**
 * A removed node is refused by a REAL agent's endpoint (the mutual-TLS HTTPS
 * endpoint of checkpoints and logs, services/agent/processes/transfer.ts),
 * end to end: one clusterd and 2 agent processes (`ra`, `rb`) with the node
 * certificates they joined with. Before the removal, `rb`'s certificate gets
 * ordinary answers from `ra`'s endpoint (a checkpoint nobody expects: 409
 * PROCESS_STATE_CONFLICT; `ra`'s logs: 403 FORBIDDEN); once an admin removes
 * `rb`, `ra`'s peer identities (a watch of the node records,
 * services/agent/page-server-peers.ts) drop it and the same certificate gets
 * 401 CREDENTIAL_REVOKED, within 5 s of the removal (the issue's acceptance
 * line; the bound is `patient(5000)`, so a loaded machine does not fail it),
 * and `ra`'s log names the refusal.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import t from 'tap';
import { pushCheckpoint, type Tls } from '../../services/agent/processes/transfer.ts';
import { createClient } from '../../services/client/index.ts';
import { patient } from '../harness/patience.ts';
import { startProcCluster } from '../harness/proc-cluster.ts';
import { until } from '../harness/until.ts';

const cluster = await startProcCluster({
  nodes: [
    { name: 'ra', cpus: 1 },
    { name: 'rb', cpus: 1 },
  ],
  processes: { rebalance: false },
});
t.teardown(() => cluster.destroy());
const { admin } = cluster;
const adminClient = createClient({ endpoints: cluster.cd.urls, ...cluster.cd.admin });
t.teardown(() => adminClient.close());

/** A node's credential, from the files the harness joined it with (its home). */
async function tlsOf(node: string): Promise<Tls> {
  const home = join(cluster.root, node);
  const [ca, cert, key] = await Promise.all(
    ['ca.crt', 'node.crt', 'node.key'].map((f) => readFile(join(home, f), 'utf8')),
  );
  return { ca: ca as string, cert: cert as string, key: key as string };
}

type Answer = { status: number; code: string };

/** PUT of a tiny checkpoint (what nodes may send) to `to`'s endpoint: its status and code. */
async function putCheckpoint(tls: Tls, to: string, address: string, cpid: number): Promise<Answer> {
  try {
    await pushCheckpoint(tls, to, address, cpid, 999, null, patient(10_000));
    return { status: 200, code: 'OK' };
  } catch (err) {
    const e = err as { status?: number; code?: string };
    if (typeof e.status !== 'number') throw err; // not an answer (connection): the caller retries
    return { status: e.status, code: e.code ?? '' };
  }
}

/** GET of a process's logs from the endpoint at `address`: its status and body. */
function getLogs(
  tls: Tls,
  address: string,
  cpid: number,
): Promise<{ status: number; body: string }> {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`not host:port: ${address}`);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: m[1],
        port: Number(m[2]),
        path: `/v1/logs/${cpid}`,
        ...tls,
        checkServerIdentity: () => undefined,
        agent: false,
        timeout: patient(10_000),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('logs request timed out')));
    req.on('error', reject);
    req.end();
  });
}

t.test("a removed node's certificate is refused by a real agent's endpoint", async (t) => {
  const address = await until("ra's endpoint address in its load report", async () => {
    const loads = await admin.listLoads();
    return loads.find((l) => l.node === 'ra')?.agentAddress ?? undefined;
  });
  t.comment(`ra's agent endpoint: ${address}`);
  const tlsB = await tlsOf('rb');

  // A process on ra, so there are logs there to ask for.
  const created = await admin.create({
    command: '/bin/sh',
    args: ['-c', 'echo revocation-test-output; exec sleep 300'],
    node: 'ra',
  });
  const { cpid } = created;
  t.teardown(() => admin.kill(cpid).catch(() => {}));
  await until(`${cpid} to run on ra`, async () => {
    const r = await admin.get(cpid);
    return r.state === 'running' && r.home === 'ra' ? r : undefined;
  });
  const { ca, cert, key } = cluster.cd.admin;
  const output = await until(`${cpid}'s output`, async () => {
    const r = await getLogs({ ca, cert, key }, address, cpid);
    return r.status === 200 && r.body.includes('revocation-test-output') ? r : undefined;
  });
  t.equal(output.status, 200, "the admin reads the process's log from ra's endpoint");

  // Before: ra's peers list (fed by a watch of the node records) knows rb with its key.
  const before = await until('ra to answer rb without a revocation', async () => {
    const a = await putCheckpoint(tlsB, 'ra', address, cpid);
    return a.status === 401 ? undefined : a;
  });
  t.same(
    before,
    { status: 409, code: 'PROCESS_STATE_CONFLICT' },
    'a member node may push a checkpoint: refused only because nobody expects it',
  );
  const logsBefore = await getLogs(tlsB, address, cpid);
  t.equal(logsBefore.status, 403, "a member node may not read another node's logs");
  t.equal(JSON.parse(logsBefore.body).code, 'FORBIDDEN');

  // The removal (rb's agent keeps running: a removed node that is still around).
  const removedAt = Date.now();
  await adminClient.nodes.remove('rb');
  const removeTook = Date.now() - removedAt;
  t.notOk(
    (await adminClient.nodes.list()).some((n) => n.name === 'rb'),
    'rb is no longer a node',
  );

  const refused = await until(
    'ra to refuse rb with CREDENTIAL_REVOKED',
    async () => {
      const a = await putCheckpoint(tlsB, 'ra', address, cpid).catch(() => undefined);
      return a?.status === 401 ? { ...a, at: Date.now() } : undefined;
    },
    30_000,
  );
  const ms = refused.at - removedAt;
  t.comment(
    `first refusal ${ms} ms after the removal was asked (${removeTook} ms of it the removal call); bound ${patient(5000)} ms`,
  );
  t.same(
    { status: refused.status, code: refused.code },
    { status: 401, code: 'CREDENTIAL_REVOKED' },
    'the checkpoint PUT is refused: 401 CREDENTIAL_REVOKED',
  );
  t.ok(
    ms < patient(5000),
    `refused within 5 s of removal (patient: ${patient(5000)} ms): ${ms} ms`,
  );

  const logsAfter = await getLogs(tlsB, address, cpid);
  t.equal(logsAfter.status, 401, 'the logs request is refused too');
  t.equal(JSON.parse(logsAfter.body).code, 'CREDENTIAL_REVOKED');
  t.notMatch(logsAfter.body, 'revocation-test-output');

  // ra's agent log (the harness writes <root>/<node>.log) names the refusal and the peer.
  const line = await until("ra's log line naming the refusal", async () => {
    const text = await readFile(join(cluster.root, 'ra.log'), 'utf8');
    for (const l of text.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        const e = JSON.parse(l) as Record<string, unknown>;
        if (e.code === 'CREDENTIAL_REVOKED' && e.peer === 'node:rb') return e;
      } catch {}
    }
    return undefined;
  });
  t.match(line, { msg: /agent endpoint refused: node:rb .*no longer a member/ });
  t.comment(`ra.log: ${JSON.stringify(line)}`);
});
