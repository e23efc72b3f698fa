/**
 * Self-test of the test harness: real etcd members (test/harness/etcd-cluster.ts) and the
 * reply-dropping proxy (test/harness/reply-dropping-proxy.ts).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { request } from 'node:https';
import { dirname } from 'node:path';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { _internal, type EtcdCluster, startEtcdCluster } from '../harness/etcd-cluster.ts';
import { startReplyDroppingProxy } from '../harness/reply-dropping-proxy.ts';

/** The harness's members speak https with client-certificate auth: present its client credential. */
function getJson(cluster: EtcdCluster, url: string): Promise<unknown> {
  const pem = cluster.tls?.clientPem;
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 2_000, ...pem }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

t.test('3-member cluster: health, SIGKILL + restart, leader, destroy', async (t) => {
  const started = Date.now();
  const cluster = await startEtcdCluster({ size: 3 });
  t.comment(`3-member cluster healthy after ${Date.now() - started} ms`);
  t.teardown(() => cluster.destroy());

  t.equal(cluster.members.length, 3);
  t.same(
    cluster.endpoints(),
    cluster.members.map((m) => m.clientUrl),
  );
  for (const m of cluster.members) {
    t.match(m.clientUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    t.ok(m.running(), `${m.name} running`);
    t.same(
      await getJson(cluster, `${m.clientUrl}/health`),
      { health: 'true' },
      `${m.name} healthy`,
    );
  }

  const credentials = cluster.tls?.credentials;
  t.ok(credentials, 'TLS with client certificates by default');
  const client = new Etcd3({ hosts: cluster.endpoints(), ...(credentials ? { credentials } : {}) });
  t.teardown(() => client.close());
  await client.put('harness/a').value('1');
  t.equal(await client.get('harness/a').string(), '1');

  const leader = await cluster.leaderIndex();
  t.ok(leader >= 0 && leader < 3, `leader is member ${leader}`);

  // SIGKILL the leader: the other two keep serving, the restarted one catches up.
  const victim = leader;
  const oldPid = cluster.members[victim]?.pid();
  t.type(oldPid, 'number');
  await cluster.kill(victim);
  t.notOk(cluster.members[victim]?.running(), 'killed member is not running');
  t.equal(cluster.members[victim]?.pid(), undefined);
  t.notOk(processExists(oldPid as number), 'killed etcd process is gone');

  // Wait for the survivors to elect a new leader first: a write sent to a follower while the
  // dead leader is not yet detected stalls for etcd's request timeout (5 s + 2 x election).
  const interim = await cluster.leaderIndex();
  t.not(interim, victim, `survivors elected member ${interim}`);
  await client.put('harness/b').value('written while a member was down');

  const restartStarted = Date.now();
  await cluster.restart(victim);
  t.comment(`restart of a SIGKILLed member took ${Date.now() - restartStarted} ms`);
  const restarted = cluster.members[victim];
  t.ok(restarted?.running(), 'restarted member is running');
  t.not(restarted?.pid(), oldPid, 'new process');
  t.same(await getJson(cluster, `${restarted?.clientUrl}/health`), { health: 'true' });

  const only = new Etcd3({
    hosts: restarted?.clientUrl as string,
    ...(credentials ? { credentials } : {}),
  });
  t.teardown(() => only.close());
  t.equal(await only.get('harness/b').string(), 'written while a member was down');
  await only.put('harness/c').value('via the restarted member');
  t.equal(await client.get('harness/c').string(), 'via the restarted member');

  const newLeader = await cluster.leaderIndex();
  t.ok(newLeader >= 0 && newLeader < 3, `leader after restart is member ${newLeader}`);

  const pids = cluster.members.map((m) => m.pid());
  t.ok(
    pids.every((p) => typeof p === 'number'),
    'every member has a pid',
  );
  const dirs = cluster.members.map((m) => m.dataDir);
  const root = dirname(dirs[0] as string);
  t.ok(dirs.every(existsSync), 'data dirs exist while running');

  client.close();
  only.close();
  await cluster.destroy();
  await cluster.destroy(); // idempotent
  for (const pid of pids) t.notOk(processExists(pid as number), `etcd pid ${pid} is gone`);
  t.ok(
    cluster.members.every((m) => !m.running()),
    'no member running',
  );
  for (const d of dirs) t.notOk(existsSync(d), `${d} removed`);
  t.notOk(existsSync(root), `${root} removed`);
  t.equal(_internal.liveClusterCount(), 0, 'nothing left for the exit handler');
});

t.test('reply-dropping proxy: the txn commits, the client sees a failure', async (t) => {
  const cluster = await startEtcdCluster({ size: 1 });
  t.teardown(() => cluster.destroy());
  const endpoint = cluster.endpoints()[0] as string;
  const proxy = await startReplyDroppingProxy(endpoint, {
    ...(cluster.tls ? { tls: cluster.tls } : {}),
  });
  t.teardown(() => proxy.close());
  const credentials = cluster.tls?.credentials;
  const viaProxy = new Etcd3({
    hosts: proxy.url,
    ...(credentials ? { credentials } : {}),
    faultHandling: { host: () => noop, global: noop },
  });
  t.teardown(() => viaProxy.close());
  const direct = new Etcd3({ hosts: endpoint, ...(credentials ? { credentials } : {}) });
  t.teardown(() => direct.close());

  // Unarmed, the proxy is a transparent pipe.
  await viaProxy.put('proxy/warmup').value('ok');
  t.equal(await viaProxy.get('proxy/warmup').string(), 'ok');
  t.equal(proxy.dropped(), 0);

  for (let i = 1; i <= 5; i++) {
    const key = `proxy/lost-reply/${randomUUID()}`;
    proxy.armDropNextReply();
    const started = Date.now();
    await t.rejects(async () => viaProxy.put(key).value(`v${i}`), `put #${i} rejects`);
    t.comment(`put #${i} rejected after ${Date.now() - started} ms`);
    t.notOk(proxy.armed(), 'arm consumed');
    t.equal(proxy.dropped(), i, 'one more drop');
    t.equal(await direct.get(key).string(), `v${i}`, `put #${i} was committed anyway`);
    // A new connection through the proxy works again.
    await viaProxy.put(`${key}/after`).value('ok');
    t.equal(await direct.get(`${key}/after`).string(), 'ok', 'proxy passes traffic again');
  }
  t.equal(proxy.droppedAfterReply(), 5, "every drop discarded etcd's complete reply");
});
