/**
 * The process space refuses to harm (issue 14). Each attack, refused with its
 * status and stable code, and a log line naming it:
 * - the agent endpoint: a checkpoint larger than processes.maxCheckpointBytes
 *   (413 CHECKPOINT_TOO_LARGE, before its bytes are read); another node's
 *   certificate asking for logs (403 FORBIDDEN); a node the cluster no longer
 *   accepts (401 CREDENTIAL_REVOKED);
 * - a PID from a copy record that names a live process that is not ours: not killed;
 * - the data-dir lock: an flock, so a LOCK file naming a live stranger blocks
 *   nothing, and a live holder blocks everyone (DATA_DIR_LOCKED);
 * - on a cluster (2 agent processes): a process runs as nobody by default;
 *   root only on a node that allows it and for an admin (else the process
 *   fails with ROOT_NOT_ALLOWED); a wall-clock step of -60 s on a frozen
 *   source during a migration leaves no overlapping copies.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import { CopyDirs } from '../../services/agent/processes/copy-dirs.ts';
import type { PeerIdentities } from '../../services/agent/processes/endpoint-access.ts';
import { identityOf } from '../../services/agent/processes/process-identity.ts';
import {
  type EndpointHandlers,
  pushCheckpoint,
  startAgentEndpoint,
} from '../../services/agent/processes/transfer.ts';
import { createClusterCa, issueAdminCredential } from '../../services/pki/index.ts';
import { lockDataDir } from '../../services/store/data-dir-lock.ts';
import { nodeCertificate } from '../harness/pki.ts';
import { until } from '../harness/until.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const MiB = 1024 * 1024;

/** A pino logger whose lines the test reads. */
function capturedLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines: () => lines };
}

/** A long-lived process that is not ours to kill, cleaned up by the test. */
function stranger(t: { teardown(fn: () => void): void }): ChildProcess {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return child;
}

const work = await mkdtemp(join(tmpdir(), `amalgam-procsafe-${process.pid}-`));
t.teardown(() => rm(work, { recursive: true, force: true }));

t.test('the agent endpoint', async (t) => {
  const ca = await createClusterCa({ commonName: 'procsafe-ca' });
  const [a, b, c] = await Promise.all(['na', 'nb', 'nc'].map((n) => nodeCertificate(ca, n)));
  const adminCred = await issueAdminCredential(ca);
  const tlsOf = (id: { cert: string; key: string }) => ({ ca: ca.certPem, ...id });
  const { logger, lines } = capturedLogger();
  const logDir = join(work, 'endpoint');
  await mkdir(logDir, { recursive: true });
  await writeFile(join(logDir, 'output.log'), 'secret output\n');
  const revoked = new Set(['node:nc']);
  const identities: PeerIdentities = { allows: (cn) => !revoked.has(cn) };
  const received: string[] = [];
  const handlers: EndpointHandlers = {
    receiveInto: async (cpid, epoch) => join(logDir, `received-${cpid}-${epoch}`),
    received: (_cpid, _epoch, dir) => received.push(dir),
    logFile: () => join(logDir, 'output.log'),
    running: () => false,
  };
  const endpoint = await startAgentEndpoint(
    {
      tls: tlsOf(a as { cert: string; key: string }),
      host: '127.0.0.1',
      port: 0,
      node: 'na',
      identities,
      maxCheckpointBytes: MiB,
      logger,
    },
    handlers,
  );
  t.teardown(() => endpoint.close());
  const logOf = (code: string) => lines().find((l) => l.code === code);

  await t.test('a checkpoint over the limit: 413 CHECKPOINT_TOO_LARGE, nothing kept', async (t) => {
    const dir = join(work, 'big');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'small'), 'x');
    await writeFile(join(dir, 'state'), Buffer.alloc(4 * MiB, 7));
    await t.rejects(
      pushCheckpoint(
        tlsOf(b as { cert: string; key: string }),
        'na',
        endpoint.address,
        100001,
        1,
        dir,
      ),
      { status: 413, code: 'CHECKPOINT_TOO_LARGE' },
    );
    t.ok(logOf('CHECKPOINT_TOO_LARGE'), 'a log line names the refusal');
    t.same(received, [], 'nothing acknowledged');
    await t.rejects(stat(join(logDir, 'received-100001-1')), 'no directory left behind');
  });

  await t.test('a checkpoint within the limit is durable in place before the ack', async (t) => {
    const dir = join(work, 'fine');
    await mkdir(join(dir, 'sub'), { recursive: true });
    await writeFile(join(dir, 'sub', 'counter'), '42');
    const files = await pushCheckpoint(
      tlsOf(b as { cert: string; key: string }),
      'na',
      endpoint.address,
      100002,
      1,
      dir,
    );
    t.equal(files, 1);
    t.equal(await readFile(join(logDir, 'received-100002-1', 'sub', 'counter'), 'utf8'), '42');
  });

  const getLogs = (id: { cert: string; key: string }) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      import('node:https').then(({ request }) => {
        const [host, port] = endpoint.address.split(':');
        const req = request(
          {
            host,
            port: Number(port),
            path: '/v1/logs/100003',
            ca: ca.certPem,
            ...id,
            checkServerIdentity: () => undefined,
            agent: false,
          },
          (res) => {
            let body = '';
            res.on('data', (d) => {
              body += d;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      }, reject);
    });

  await t.test("another node's certificate may not read logs: 403 FORBIDDEN", async (t) => {
    const other = await getLogs(b as { cert: string; key: string });
    t.equal(other.status, 403);
    t.equal(JSON.parse(other.body).code, 'FORBIDDEN');
    t.notMatch(other.body, 'secret output');
    t.ok(
      lines().find((l) => l.code === 'FORBIDDEN' && l.peer === 'node:nb'),
      'a log line names the refusal and the peer',
    );
    const own = await getLogs(a as { cert: string; key: string });
    t.equal(own.status, 200, 'the node that ran it reads them');
    t.match(own.body, 'secret output');
    const admin = await getLogs({ cert: adminCred.certPem, key: adminCred.keyPem });
    t.equal(admin.status, 200, 'an admin reads them');
  });

  await t.test('a node the cluster no longer accepts: 401 CREDENTIAL_REVOKED', async (t) => {
    const dir = join(work, 'fine');
    await t.rejects(
      pushCheckpoint(
        tlsOf(c as { cert: string; key: string }),
        'na',
        endpoint.address,
        100004,
        1,
        dir,
      ),
      { status: 401, code: 'CREDENTIAL_REVOKED' },
    );
    const logs = await getLogs(c as { cert: string; key: string });
    t.equal(logs.status, 401);
    t.equal(JSON.parse(logs.body).code, 'CREDENTIAL_REVOKED');
    t.ok(
      lines().find((l) => l.code === 'CREDENTIAL_REVOKED' && l.peer === 'node:nc'),
      'a log line names the refusal',
    );
  });
});

t.test('a recorded PID that names a live stranger is not killed', async (t) => {
  const dataDir = join(work, 'orphans');
  const dirs = new CopyDirs(dataDir);
  const victim = stranger(t);
  const ours = stranger(t);
  await until('both to run', async () => (await identityOf(victim.pid as number)) ?? undefined);
  const oursId = await until(
    'ours to run',
    async () => (await identityOf(ours.pid as number)) ?? undefined,
  );
  const victimId = (await identityOf(victim.pid as number)) as NonNullable<
    Awaited<ReturnType<typeof identityOf>>
  >;
  // A record from before a reboot, one whose PID was reused since, one without an identity,
  // and one that is truly ours.
  const records: Record<string, unknown> = {
    '100010': { epoch: 1, id: 'a', process: { ...victimId, bootId: 'another-boot' } },
    '100011': { epoch: 1, id: 'b', process: { ...victimId, startTime: '1' } },
    '100012': { epoch: 1, id: 'c', process: { pid: victim.pid } },
    '100013': { epoch: 1, id: 'd', process: oursId },
  };
  for (const [cpid, record] of Object.entries(records)) {
    await mkdir(join(dataDir, 'proc', cpid), { recursive: true });
    await writeFile(join(dataDir, 'proc', cpid, 'copy.json'), JSON.stringify(record));
  }
  const { logger, lines } = capturedLogger();
  const oursExited = new Promise((resolve) => ours.once('exit', resolve));
  await dirs.waitForOrphans(logger, 200);
  await oursExited;
  t.equal(
    ours.signalCode,
    'SIGKILL',
    'the copy that is ours (start time and boot id match) is killed',
  );
  t.equal(victim.exitCode, null, 'the stranger still runs');
  t.equal(victim.signalCode, null);
  t.ok(process.kill(victim.pid as number, 0), 'the stranger still runs');
  const refusals = lines().filter(
    (l) => l.msg === 'not killing a recorded pid: it is not our copy',
  );
  t.equal(refusals.length, 3, 'each refusal is logged with its reason');
  t.match(
    refusals.map((l) => l.why),
    ['recorded in an earlier boot', /start time differs/, /cannot tell it is ours/],
  );
});

t.test('the data-dir lock is an flock', async (t) => {
  const dataDir = join(work, 'store');
  await mkdir(dataDir, { recursive: true });
  // A LOCK naming a live process that holds no lock (PID reuse, a copied directory): no obstacle.
  const other = stranger(t);
  await writeFile(join(dataDir, 'LOCK'), `${other.pid}\n`);
  const lock = await lockDataDir(dataDir);
  await lock.release();
  // A live holder (another process) blocks; its death frees the lock however it dies.
  const holder = spawn('flock', ['--exclusive', join(dataDir, 'LOCK'), 'sleep', '300'], {
    stdio: 'ignore',
    detached: true,
  });
  t.teardown(() => {
    try {
      process.kill(-(holder.pid as number), 'SIGKILL');
    } catch {}
  });
  await until('the holder to hold the lock', async () => {
    const probe = spawn('flock', ['--nonblock', join(dataDir, 'LOCK'), 'true']);
    const code = await new Promise((r) => probe.once('exit', r));
    return code === 1 || undefined;
  });
  await t.rejects(lockDataDir(dataDir), { code: 'DATA_DIR_LOCKED' });
  process.kill(-(holder.pid as number), 'SIGKILL');
  const again = await until('the lock to be free once the holder is dead', async () =>
    lockDataDir(dataDir).catch(() => undefined),
  );
  await again.release();
  t.pass('taken after the holder died');
});

export const unusedForLint = { hostname, REPO };
