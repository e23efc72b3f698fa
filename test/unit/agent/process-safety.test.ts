/**
 * The pure decisions of the process space's safety: whom a copy runs as,
 * whether a recorded PID is ours to kill, who may use the agent endpoint.
 */
import t from 'tap';
import {
  checkIdentity,
  type EndpointPeer,
  mayPushCheckpoint,
  mayReadLogs,
  peerOfSubject,
} from '../../../services/agent/processes/endpoint-access.ts';
import { monotonicMs } from '../../../services/agent/processes/monotonic.ts';
import { decideKill, parseStat } from '../../../services/agent/processes/process-identity.ts';
import {
  DEFAULT_USER,
  decideRunAs,
  setprivIdentity,
  type UserAccount,
  wantedUser,
} from '../../../services/agent/processes/run-as.ts';

const nobody: UserAccount = { name: 'nobody', uid: 65534, gid: 65534, groups: [65534], home: '/' };
const root: UserAccount = { name: 'root', uid: 0, gid: 0, groups: [0], home: '/root' };
const closed = { defaultUser: DEFAULT_USER, allowRoot: false };
const open = { defaultUser: DEFAULT_USER, allowRoot: true };

t.test('run-as: unprivileged by default, root only when allowed and an admin asked', async (t) => {
  t.equal(wantedUser(undefined, closed), 'nobody', 'no user asked: the default');
  t.equal(wantedUser('alice', closed), 'alice');
  t.same(decideRunAs('nobody', nobody, 'node', closed), { ok: true, account: nobody });
  t.match(decideRunAs('root', root, 'admin', closed), { ok: false, code: 'ROOT_NOT_ALLOWED' });
  t.match(decideRunAs('root', root, 'node', open), { ok: false, code: 'ROOT_NOT_ALLOWED' });
  t.match(decideRunAs('root', root, undefined, open), { ok: false, code: 'ROOT_NOT_ALLOWED' });
  t.match(decideRunAs('root', root, 'operator', open), { ok: false, code: 'ROOT_NOT_ALLOWED' });
  t.same(decideRunAs('root', root, 'admin', open), { ok: true, account: root });
  const toor = { ...root, name: 'toor' };
  t.match(
    decideRunAs('toor', toor, 'node', open),
    { ok: false, code: 'ROOT_NOT_ALLOWED' },
    'root is uid 0, whatever the name',
  );
  t.match(decideRunAs('ghost', null, 'admin', open), { ok: false, code: 'USER_UNKNOWN' });
  t.match(
    decideRunAs('nobody', nobody, 'admin', open, 1000),
    { ok: false, code: 'USER_UNKNOWN' },
    'an agent that is not root cannot switch users',
  );
  t.same(setprivIdentity(nobody), ['--reuid=65534', '--regid=65534', '--groups=65534']);
  t.same(setprivIdentity({ ...nobody, groups: [] }).at(-1), '--clear-groups');
});

t.test('kill decision: start time and boot id must match the record', async (t) => {
  const line = '4242 (my (odd) proc) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21';
  t.same(
    parseStat(line),
    { state: 'S', startTime: '987654' },
    'field 22 past a command with parens',
  );
  t.equal(parseStat('garbage'), null);
  const rec = { pid: 4242, startTime: '987654', bootId: 'boot-a' };
  const now = { state: 'S', startTime: '987654' };
  t.same(decideKill(rec, now, 'boot-a'), { kill: true });
  t.match(decideKill(rec, { ...now, startTime: '1' }, 'boot-a'), { kill: false }, 'PID reused');
  t.match(decideKill(rec, now, 'boot-b'), { kill: false }, 'recorded before a reboot');
  t.match(decideKill({ pid: 4242 }, now, 'boot-a'), { kill: false }, 'no identity recorded');
  t.match(decideKill(rec, { ...now, state: 'Z' }, 'boot-a'), { kill: false }, 'a zombie');
  t.match(decideKill(rec, null, 'boot-a'), { kill: false, why: 'not running' });
});

t.test('endpoint access: who may push checkpoints and read logs', async (t) => {
  const node = (name: string) => peerOfSubject({ CN: `node:${name}`, O: 'amalgam:nodes' });
  const user = (o: string) => peerOfSubject({ CN: 'user:ann', O: o });
  const admin = peerOfSubject({ CN: 'admin', O: 'amalgam:admins' }) as EndpointPeer;
  t.same(node('a'), { kind: 'node', name: 'a', commonName: 'node:a' });
  t.equal(peerOfSubject({ CN: 'node:a', O: 'amalgam:admins' }), null, 'CN and O must agree');
  t.equal(peerOfSubject({ CN: ['node:a', 'node:b'], O: 'amalgam:nodes' }), null);
  t.equal(user('amalgam:strangers'), null);
  t.match(mayReadLogs(node('a') as EndpointPeer, 'a'), { ok: true }, 'the node that ran it');
  t.match(mayReadLogs(node('b') as EndpointPeer, 'a'), { ok: false, code: 'FORBIDDEN' });
  t.match(mayReadLogs(admin, 'a'), { ok: true });
  t.match(mayReadLogs(user('amalgam:operators') as EndpointPeer, 'a'), { ok: true });
  t.match(mayReadLogs(user('amalgam:admins') as EndpointPeer, 'a'), { ok: true });
  t.match(mayReadLogs(user('amalgam:viewers') as EndpointPeer, 'a'), { ok: false });
  t.match(mayPushCheckpoint(admin), { ok: false, code: 'FORBIDDEN' });
  t.match(mayPushCheckpoint(node('b') as EndpointPeer), { ok: true });
  const identities = { allows: (cn: string, key: string) => cn === 'node:a' && key === 'sha256:k' };
  t.match(checkIdentity(node('a') as EndpointPeer, 'sha256:k', identities), { ok: true });
  t.match(checkIdentity(node('a') as EndpointPeer, 'sha256:old', identities), {
    ok: false,
    status: 401,
    code: 'CREDENTIAL_REVOKED',
  });
  t.match(checkIdentity(node('b') as EndpointPeer, 'sha256:k', identities), {
    code: 'CREDENTIAL_REVOKED',
  });
});

t.test('the lease clock is CLOCK_MONOTONIC, not the wall clock', async (t) => {
  const realNow = Date.now;
  const before = monotonicMs();
  Date.now = () => realNow() - 60_000;
  try {
    const after = monotonicMs();
    t.ok(after >= before && after - before < 5_000, 'a wall-clock step of -60 s does not move it');
  } finally {
    Date.now = realNow;
  }
});

t.test(
  'a received checkpoint: refused by its declared sizes before the bytes are read',
  async (t) => {
    const { mkdtemp, readdir, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { unpackDirectory } = await import(
      '../../../services/agent/processes/checkpoint-frames.ts'
    );
    const dir = await mkdtemp(join(tmpdir(), 'frames-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    let pulled = 0;
    async function* lying(): AsyncGenerator<Buffer> {
      const path = Buffer.from('state');
      const head = Buffer.alloc(4);
      head.writeUInt32BE(path.length);
      const size = Buffer.alloc(8);
      size.writeUInt32BE(0, 0);
      size.writeUInt32BE(64 * 1024 * 1024, 4);
      yield Buffer.concat([head, path, size]);
      for (let i = 0; i < 1024; i++) {
        pulled++;
        yield Buffer.alloc(64 * 1024);
      }
    }
    await t.rejects(unpackDirectory(lying(), join(dir, 'target'), 1024 * 1024), {
      code: 'CHECKPOINT_TOO_LARGE',
    });
    t.equal(pulled, 0, 'not one byte of the file was read');
    t.same(await readdir(dir), [], 'nothing left behind');
  },
);
