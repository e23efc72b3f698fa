import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { startAgent } from '../../services/agent/agent.ts';
import { WireStatus } from '../../services/api/wire.ts';
import { createClient } from '../../services/client/index.ts';
import { PageServerClient, PageServerError } from '../../services/client/pageserver-client.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { pageServerBinary } from '../harness/native.ts';
import { joinNode } from '../harness/node.ts';
import { pidExists } from '../harness/processes.ts';
import { until } from '../harness/until.ts';

const BINARY = pageServerBinary();

const MiB = 1024 * 1024;

const cd = await startClusterdReplicas({
  count: 1,
  store: { backend: 'embedded' },
  extraConfig: { nodeGraceSeconds: 3 },
});
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), 'amalgam-agent-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const admin = createClient({
  endpoints: cd.urls,
  ca: cd.admin.ca,
  cert: cd.admin.cert,
  key: cd.admin.key,
});
t.teardown(() => admin.close());

t.test('an agent serves its node range and keeps it served', async (t) => {
  const name = 'agent-1';
  const { token } = await admin.tokens.create({ description: 'agent test' });
  const { csrPem, keyPem } = await createKeyAndCsr({ commonName: name });
  const anonymous = createClient({ endpoints: cd.urls, ca: cd.admin.ca });
  const joined = await anonymous.nodes.join({
    token,
    name,
    csr: csrPem,
    capacity: {
      memoryBytes: 256 * MiB,
      swapBytes: 0,
      contributedBytes: 64 * MiB,
      cpus: 1,
      cpuSpeed: 1,
    },
  });
  await anonymous.close();
  const range = joined.node.range;
  t.ok(range.size >= 64 * MiB, 'the node has a committed range');

  await writeFile(join(dir, 'node.crt'), joined.certificate);
  await writeFile(join(dir, 'node.key'), keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'ca.crt'), joined.caCertificate);
  const configFile = join(dir, 'agent.json');
  await writeFile(
    configFile,
    JSON.stringify({
      server: cd.urls,
      name,
      certFile: 'node.crt',
      keyFile: 'node.key',
      caFile: 'ca.crt',
      heartbeatSeconds: 1,
    }),
  );
  const { loadAgentConfig } = await import('../../services/agent/config.ts');
  const config = await loadAgentConfig(configFile);
  t.equal(config.certFile, join(dir, 'node.crt'), 'file names relative to agent.json');

  const agent = await startAgent({
    config: { ...config, pageserver: { binary: BINARY, plaintextLoopback: true } },
    logger: pino({ level: process.env.AGENT_LOG ?? 'silent' }),
    healthMs: 300,
  });
  let closed = false;
  t.teardown(async () => {
    if (!closed) await agent.close();
  });

  await until(
    'the node to be Ready',
    async () => (await admin.nodes.get(name)).state === 'Ready' || undefined,
  );
  const node = await admin.nodes.get(name);
  t.ok(node.load && node.load.processes > 0, 'the heartbeat carries the load');

  const first = await until('the page server', () => agent.pageServer() ?? undefined);
  t.same(first.range, range, 'the page server serves exactly the committed range');

  const check = async (port: number, what: string) => {
    const ps = await PageServerClient.connect('127.0.0.1', port);
    try {
      const bytes = Buffer.from(`hello ${what}`);
      await ps.write(range.start, bytes);
      t.same(
        await ps.read(range.start, bytes.length),
        bytes,
        `${what}: read back at the range start`,
      );
      const last = range.start + range.size - 8;
      await ps.write(last, Buffer.alloc(8, 7));
      t.same(await ps.read(last, 8), Buffer.alloc(8, 7), `${what}: the last word of the range`);
      for (const [addr, label] of [
        [range.start - 1, 'one byte below the start'],
        [range.start + range.size, 'the first byte past the end'],
      ] as const) {
        await ps.read(addr, 1).then(
          () => t.fail(`${what}: ${label} was served`),
          (e: unknown) => {
            t.ok(e instanceof PageServerError, `${what}: ${label} is refused`);
            t.equal(
              (e as PageServerError).status,
              WireStatus.E_OUT_OF_RANGE,
              `${what}: ${label}: E_OUT_OF_RANGE`,
            );
          },
        );
      }
      const stats = await ps.stat();
      t.equal(stats.rangeStart, BigInt(range.start));
      t.equal(stats.rangeSize, BigInt(range.size));
    } finally {
      await ps.close();
    }
  };
  await check(first.port, 'first process');

  process.kill(first.pid, 'SIGKILL');
  const second = await until('a new page server', () => {
    const p = agent.pageServer();
    return p && p.pid !== first.pid ? p : undefined;
  });
  t.not(second.pid, first.pid, 'restarted as a new process');
  t.same(second.range, range);
  await check(second.port, 'restarted process');
  // A restart that succeeds never withholds a heartbeat: Ready through more than the grace.
  const readyUntil = Date.now() + 4000; // nodeGraceSeconds is 3
  while (Date.now() < readyUntil) {
    t.equal((await admin.nodes.get(name)).state, 'Ready', 'Ready after a repaired SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
  }

  const text = await until('page server counters on /metrics', async () => {
    const body = await (await fetch(agent.metricsUrl)).text();
    return /amalgam_pageserver_requests_total\{op="write"\} [1-9]/.test(body) ? body : undefined;
  });
  t.match(text, /amalgam_pageserver_up 1/);
  t.match(text, /amalgam_pageserver_starts_total [2-9]/);
  t.match(text, /amalgam_pageserver_read_bytes_total [1-9]/);
  t.match(text, /amalgam_pageserver_range_size_bytes /);
  t.match(text, /amalgam_agent_heartbeats_total\{outcome="ok"\} [1-9]/);

  await agent.close();
  closed = true;
  t.notOk(pidExists(second.pid), 'closing the agent stops the page server');
  t.equal(agent.pageServer(), null);
  await until(
    'the node to turn NotReady',
    async () => (await admin.nodes.get(name)).state === 'NotReady' || undefined,
  );
  t.pass('NotReady after the grace period');
});

t.test('a page server that cannot be restarted turns the node NotReady', async (t) => {
  const name = 'agent-2';
  const home = join(dir, name);
  const { files } = await joinNode(cd, name, {
    home,
    contributedBytes: 32 * MiB,
    memoryBytes: 256 * MiB,
  });
  // A page server that starts only while a flag file exists, else exits at once.
  const flag = join(home, 'may-start');
  const wrapper = join(home, 'pageserver.sh');
  await writeFile(
    wrapper,
    `#!/bin/sh\n[ -e '${flag}' ] && exec '${BINARY}' "$@"\necho 'refusing to start' >&2\nexit 1\n`,
  );
  await chmod(wrapper, 0o755);
  await writeFile(flag, '');

  const agent = await startAgent({
    config: {
      server: cd.urls,
      name,
      ...files,
      heartbeatSeconds: 1,
      pageserver: { binary: wrapper, plaintextLoopback: true },
    },
    logger: pino({ level: process.env.AGENT_LOG ?? 'silent' }),
    healthMs: 300,
  });
  t.teardown(() => agent.close());
  const state = async () => (await admin.nodes.get(name)).state;

  await until('the node to be Ready', async () => (await state()) === 'Ready' || undefined);
  const first = await until('the page server', () => agent.pageServer() ?? undefined);
  await until('a passed health check', async () => {
    const body = await (await fetch(agent.metricsUrl)).text();
    return /amalgam_pageserver_up 1/.test(body) || undefined;
  });

  await rm(flag);
  process.kill(first.pid, 'SIGKILL');
  await until('the node to turn NotReady', async () => (await state()) === 'NotReady' || undefined);
  t.equal(agent.pageServer(), null, 'no page server runs');
  t.pass('NotReady while every restart fails');

  await writeFile(flag, '');
  const again = await until('a restarted page server', () => agent.pageServer() ?? undefined);
  t.not(again.pid, first.pid);
  await until('the node to be Ready again', async () => (await state()) === 'Ready' || undefined);
  t.pass('Ready again once a restart succeeds');
});
