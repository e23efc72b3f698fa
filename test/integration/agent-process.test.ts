/**
 * bin/clusteragent.mjs as a process: started with --config and --metrics-port,
 * it runs the page server on the node's range; SIGTERM stops the page server
 * and the agent exits 0.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createClient } from '../../services/client/index.ts';
import { PageServerClient } from '../../services/client/pageserver-client.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { joinNode } from '../harness/node.ts';
import { freePorts, pidExists } from '../harness/processes.ts';
import { until } from '../harness/until.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BINARY = join(ROOT, 'native', 'build', 'pageserver');
if (!existsSync(BINARY)) execFileSync('make', ['-C', join(ROOT, 'native')], { stdio: 'ignore' });
const MiB = 1024 * 1024;

const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), 'amalgam-agent-proc-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('clusteragent --config: serves the range, exits 0 on SIGTERM', async (t) => {
  const admin = createClient({
    endpoints: cd.urls,
    ca: cd.admin.ca,
    cert: cd.admin.cert,
    key: cd.admin.key,
  });
  t.teardown(() => admin.close());
  const name = 'agent-proc';
  const { joined, keyPem } = await joinNode(cd, name, {
    home: dir,
    contributedBytes: 8 * MiB,
  });
  await writeFile(
    join(dir, 'agent.json'),
    JSON.stringify({
      server: cd.urls,
      name,
      certFile: 'node.crt',
      keyFile: 'node.key',
      caFile: 'ca.crt',
      heartbeatSeconds: 1,
    }),
  );
  const [metricsPort] = await freePorts(1);
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/clusteragent.mjs'),
      '--config',
      join(dir, 'agent.json'),
      '--metrics-port',
      String(metricsPort),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const started = new Promise<{ pid: number; port: number }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; pid?: number; port?: number };
        if (entry.msg === 'page server started' && entry.port)
          resolve({ pid: entry.pid as number, port: entry.port });
      } catch {}
    });
    void exited.then((code) => reject(new Error(`clusteragent exited ${code}`)));
  });
  const ps = await started;
  // The page server speaks mutual TLS by default; the node's own certificate is a member's.
  const client = await PageServerClient.connect('127.0.0.1', ps.port, {
    tls: { ca: joined.caCertificate, cert: joined.certificate, key: keyPem, node: name },
  });
  const stats = await client.stat();
  t.equal(
    stats.rangeStart,
    BigInt(joined.node.range.start),
    'the page server serves the node range',
  );
  t.equal(stats.rangeSize, BigInt(joined.node.range.size));
  await client.close();
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  t.match(metrics, /amalgam_pageserver_/, '/metrics on --metrics-port');

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exits 0 on SIGTERM');
  t.notOk(pidExists(ps.pid), 'the page server is stopped');

  // Started again and killed outright: its page server must not outlive it (an orphan
  // would hold the range's memory and a port that nobody publishes).
  const again = spawn(
    process.execPath,
    [join(ROOT, 'bin/clusteragent.mjs'), '--config', join(dir, 'agent.json')],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  t.teardown(() => {
    if (again.exitCode === null) again.kill('SIGKILL');
  });
  const second = await new Promise<number>((resolve) => {
    createInterface({ input: again.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; pid?: number };
        if (entry.msg === 'page server started' && entry.pid) resolve(entry.pid);
      } catch {}
    });
  });
  t.ok(pidExists(second), 'a page server runs');
  again.kill('SIGKILL');
  await until('the page server died with its agent', async () => !pidExists(second) || undefined);
  t.pass('no orphaned page server after SIGKILL of the agent');
});
