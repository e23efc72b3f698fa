/**
 * clusterd for real: HTTPS on 127.0.0.1 with certificates from the PKI
 * library, the embedded store, mutual TLS deciding who calls. In-process
 * through `startClusterd`, and as a process started the way an operator (or
 * clusteradm) starts it, closed by SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import { parseConfig } from '../../services/controlplane/config.ts';
import { buildApp } from '../../services/controlplane/rest/app.ts';
import { startClusterd } from '../../services/controlplane/server.ts';
import type { ControlPlaneRuntime } from '../../services/controlplane/service/contracts.ts';
import {
  type ClusterCa,
  createClusterCa,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
} from '../../services/pki/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Credential {
  certPem: string;
  keyPem: string;
}

/** A JSON log line of clusterd. */
type LogLine = Record<string, unknown>;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field in assertions
  json(): any;
}

function call(
  url: string,
  ca: string,
  options: {
    method?: string;
    body?: unknown;
    as?: Credential;
    headers?: Record<string, string>;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = httpsRequest(
      url,
      {
        method: options.method ?? 'GET',
        ca,
        agent: false,
        ...(options.as ? { cert: options.as.certPem, key: options.as.keyPem } : {}),
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: () => JSON.parse(text),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface Cluster {
  dir: string;
  ca: ClusterCa;
  admin: Credential;
  configFile: string;
}

/** A CA, a server certificate for 127.0.0.1 (chain: leaf then CA), an admin credential, a config file. */
async function makeCluster(t: Test): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-clusterd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ca = await createClusterCa();
  const server = await createKeyAndCsr({ commonName: 'clusterd' });
  const serverCert = await signCsr(ca, server.csrPem, {
    commonName: 'clusterd',
    organization: 'amalgam:control-plane',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usages: ['server'],
    validityDays: 1,
  });
  const admin = await issueAdminCredential(ca);
  await writeFile(join(dir, 'clusterd.crt'), serverCert + ca.certPem);
  await writeFile(join(dir, 'clusterd.key'), server.keyPem);
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await writeFile(join(dir, 'ca.key'), ca.keyPem);
  const configFile = join(dir, 'clusterd.json');
  await writeFile(
    configFile,
    JSON.stringify({
      clusterName: 'it',
      listen: { host: '127.0.0.1', port: 0 },
      tls: {
        certFile: 'clusterd.crt',
        keyFile: 'clusterd.key',
        caFile: 'ca.crt',
        caKeyFile: 'ca.key',
      },
      store: { backend: 'embedded', dataDir: 'data' },
      logLevel: 'info',
    }),
  );
  return { dir, ca, admin, configFile };
}

const capacity = {
  memoryBytes: 2 ** 30,
  swapBytes: 0,
  contributedBytes: 2 ** 30,
  cpus: 2,
  cpuSpeed: 1000,
};

t.test('in-process clusterd over HTTPS with mutual TLS', async (t) => {
  const cluster = await makeCluster(t);
  const config = parseConfig(JSON.parse(await readFile(cluster.configFile, 'utf8')), cluster.dir);
  const clusterd = await startClusterd(config, pino({ level: 'silent' }));
  t.teardown(() => clusterd.close());
  t.match(clusterd.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const at = (path: string) => `${clusterd.url}${path}`;
  const ca = cluster.ca.certPem;

  t.equal((await call(at('/healthz'), ca)).status, 200, '/healthz answers without a certificate');
  const ready = await call(at('/readyz'), ca);
  t.equal(ready.status, 200);
  t.same(ready.json(), { status: 'ready' });

  const anonymous = await call(at('/v1/tokens'), ca, { method: 'POST', body: {} });
  t.equal(anonymous.status, 401, 'no certificate: no token');
  t.equal(anonymous.json().code, 'UNAUTHENTICATED');
  t.match(anonymous.headers['content-type'], /^application\/problem\+json/);

  const stranger = await issueAdminCredential(await createClusterCa());
  const foreign = await call(at('/v1/tokens'), ca, { method: 'POST', body: {}, as: stranger });
  t.equal(foreign.status, 401, 'an admin certificate from another CA is nobody');

  const created = await call(at('/v1/tokens'), ca, {
    method: 'POST',
    body: { ttlSeconds: 600, description: 'integration' },
    as: cluster.admin,
    headers: { 'x-request-id': 'it-token-1' },
  });
  t.equal(created.status, 201, created.text);
  t.equal(created.headers['x-request-id'], 'it-token-1');
  const { token } = created.json();
  t.match(token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);

  // A machine joins without a certificate, then speaks with the one it got.
  const keyAndCsr = await createKeyAndCsr({ commonName: 'node-1' });
  const joined = await call(at('/v1/join'), ca, {
    method: 'POST',
    body: { token, name: 'node-1', csr: keyAndCsr.csrPem, capacity },
  });
  t.equal(joined.status, 201, joined.text);
  const node: Credential = { certPem: joined.json().certificate, keyPem: keyAndCsr.keyPem };
  t.equal(joined.json().caCertificate, ca);

  const beat = await call(at('/v1/nodes/node-1/heartbeat'), ca, {
    method: 'POST',
    body: { load1: 0.5, load5: 0.4, load15: 0.3, memoryUsedBytes: 1024, processes: 10 },
    as: node,
  });
  t.equal(beat.status, 200, beat.text);
  t.equal(beat.json().state, 'Ready');
  const info = await call(at('/v1/cluster'), ca, { as: node });
  t.equal(info.status, 200);
  t.equal(info.json().nodes, 1);
  t.equal(info.json().name, 'it');
  const nodeMintsToken = await call(at('/v1/tokens'), ca, { method: 'POST', body: {}, as: node });
  t.equal(nodeMintsToken.status, 403, 'a node is not the admin');
  t.equal(nodeMintsToken.json().code, 'FORBIDDEN');

  const metrics = await call(at('/metrics'), ca);
  t.equal(metrics.status, 200);
  t.match(metrics.headers['content-type'], /^text\/plain/);
  for (const name of [
    'amalgam_http_requests_total',
    'amalgam_http_request_duration_seconds',
    'amalgam_nodes',
    'amalgam_memory_address_space_allocated_bytes',
    'amalgam_memory_address_space_free_bytes',
    'amalgam_store_txn_duration_seconds',
    'amalgam_controller_leader',
  ]) {
    t.match(metrics.text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exported`);
  }
  t.match(metrics.text, /^amalgam_nodes\{state="Ready"\} 1$/m);
  t.match(
    metrics.text,
    /^amalgam_http_requests_total\{route="\/v1\/tokens",method="POST",code="201"\} 1$/m,
  );
  t.match(metrics.text, /^amalgam_memory_address_space_allocated_bytes 1073741824$/m);
  t.match(
    metrics.text,
    /^amalgam_store_txn_duration_seconds_count\{backend="embedded",outcome="succeeded"\} [1-9]/m,
  );

  await clusterd.close();
  await t.rejects(call(at('/healthz'), ca), 'closed: nothing listens any more');
});

/** Starts server.ts as a process; resolves with its URL from the "clusterd listening" line. */
function startProcess(
  t: Test,
  configFile: string,
): Promise<{ child: ChildProcess; url: string; lines: LogLine[] }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      join(ROOT, 'scripts/ts-loader.mjs'),
      join(ROOT, 'services/controlplane/server.ts'),
      '--config',
      configFile,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: LogLine[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const entry = JSON.parse(line) as LogLine;
      lines.push(entry);
      if (entry.msg === 'clusterd listening') resolve({ child, url: String(entry.url), lines });
    });
    child.on('exit', (code) =>
      reject(new Error(`clusterd exited with ${code} before listening: ${stderr}`)),
    );
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });
}

t.test(
  'clusterd as a process: listens, logs its URL, keeps state, closes on SIGTERM',
  async (t) => {
    const cluster = await makeCluster(t);
    const ca = cluster.ca.certPem;

    const first = await startProcess(t, cluster.configFile);
    t.match(first.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    t.equal((await call(`${first.url}/healthz`, ca)).status, 200);
    const created = await call(`${first.url}/v1/tokens`, ca, {
      method: 'POST',
      body: { description: 'survives a restart' },
      as: cluster.admin,
      headers: { 'x-request-id': 'proc-1' },
    });
    t.equal(created.status, 201, created.text);
    first.child.kill('SIGTERM');
    t.equal(await exitOf(first.child), 0, 'a clean exit on SIGTERM');
    t.ok(
      first.lines.some((l) => l.msg === 'clusterd closed'),
      'it says it closed',
    );
    t.ok(
      first.lines.some((l) => l.reqId === 'proc-1' && l.msg === 'request completed'),
      'requests are logged with their request id',
    );

    const second = await startProcess(t, cluster.configFile);
    const listed = await call(`${second.url}/v1/tokens`, ca, { as: cluster.admin });
    t.equal(listed.status, 200);
    t.same(
      listed.json().items.map((i: { description: string }) => i.description),
      ['survives a restart'],
    );
    second.child.kill('SIGINT');
    t.equal(await exitOf(second.child), 0, 'a clean exit on SIGINT');
  },
);

t.test('clusterd --help, and a bad config named by its field', async (t) => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          join(ROOT, 'scripts/ts-loader.mjs'),
          join(ROOT, 'services/controlplane/server.ts'),
          ...args,
        ],
        { cwd: ROOT },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-badconfig-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    join(dir, 'c.json'),
    JSON.stringify({ clusterName: 'x', listen: { host: 'h', port: -1 } }),
  );
  const [help, bad, none] = await Promise.all([
    run(['--help']),
    run(['--config', join(dir, 'c.json')]),
    run([]),
  ]);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: clusterd --config <file>/);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /bad config .*c\.json: listen\.port: an integer from 0 to 65535/);
  t.equal(none.code, 2);
  t.match(none.stderr, /--config is required/);
});

t.test('a request that arrives while clusterd closes gets 503 STORE_CLOSED', async (t) => {
  // One request holds the close open (its readiness read never answers until
  // released); a second one, sent on the same connection once close began,
  // must get a problem document, not fastify's own 503.
  let release: (ready: boolean) => void = () => {};
  let entered: () => void = () => {};
  const inReady = new Promise<void>((resolve) => {
    entered = resolve;
  });
  let refused: () => void = () => {};
  const refusedLogged = new Promise<void>((resolve) => {
    refused = resolve;
  });
  const runtime = {
    stats: async () => Promise.reject(new Error('unused')),
    ready: () =>
      new Promise<boolean>((resolve) => {
        release = resolve;
        entered();
      }),
  } as unknown as ControlPlaneRuntime;
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        if (JSON.parse(line).code === 'STORE_CLOSED') refused();
      },
    },
  );
  const app = buildApp({ runtime, logger, registry: new Registry() });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;

  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString();
  });
  const closed = new Promise((resolve) => socket.on('close', resolve));
  socket.write('GET /readyz HTTP/1.1\r\nHost: clusterd\r\n\r\n');
  await inReady;
  const closing = app.close();
  while (app.server.listening) await new Promise((r) => setImmediate(r));
  socket.write('GET /healthz HTTP/1.1\r\nHost: clusterd\r\nx-request-id: late-1\r\n\r\n');
  await refusedLogged;
  release(true);
  await closing;
  socket.end();
  await closed;

  const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  t.same(statuses, [200, 503], 'the request in flight finishes; the late one is refused');
  const late = JSON.parse(
    received.slice(received.lastIndexOf('{"type"')).split('\r\n')[0] as string,
  );
  t.match(late, { code: 'STORE_CLOSED', status: 503, requestId: 'late-1' });
});
