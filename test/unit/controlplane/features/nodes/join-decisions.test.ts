/**
 * The pure parts of join and of bound node credentials: the batch decision
 * (token uses, removed keys), the rate limiter, the contribution cap, the
 * node credential verdict and its checker over a mirror, and the gRPC peer
 * address.
 */
import t from 'tap';
import type { JoinRequest } from '../../../../../services/api/contracts.ts';
import {
  decideJoins,
  type JoinState,
} from '../../../../../services/controlplane/features/nodes/join-claims.ts';
import {
  checkContribution,
  JoinRateLimiter,
} from '../../../../../services/controlplane/features/nodes/join-limits.ts';
import {
  nodeCredentialChecker,
  verdictFor,
} from '../../../../../services/controlplane/features/nodes/node-credentials.ts';
import {
  type NodeRecord,
  nodeKeys,
  type RevokedRecord,
} from '../../../../../services/controlplane/features/nodes/records.ts';
import type { TokenRecord } from '../../../../../services/controlplane/features/tokens/records.ts';
import { peerAddress } from '../../../../../services/controlplane/grpc/caller.ts';
import { isAmalgamError } from '../../../../../services/core/errors.ts';
import { createMemoryLayout } from '../../../../../services/core/memory-layout.ts';
import type { NodeClaim } from '../../../../../services/core/nodes.ts';
import type { Mirror } from '../../../../../services/store/mirror.ts';

const MiB = 1024 * 1024;
const NOW = 1_000_000;
const claim = (name: string, identity = `sha256:${name}`): NodeClaim => ({
  name,
  identity,
  capacity: { memoryBytes: 8 * MiB, swapBytes: 0, contributedBytes: 2 * MiB, cpus: 1, cpuSpeed: 1 },
});
const token = (maxUses?: number, uses = 0): TokenRecord => ({
  id: 'abcdef',
  secretHash: 'x',
  description: '',
  usages: ['join'],
  createdAt: 0,
  expiresAt: NOW + 1000,
  uses,
  ...(maxUses === undefined ? {} : { maxUses }),
});

function state(
  tokens: Record<string, TokenRecord>,
  revoked: Record<string, RevokedRecord> = {},
  nodes: Record<string, NodeRecord> = {},
): JoinState {
  return {
    layout: createMemoryLayout(),
    node: (name) => nodes[name],
    token: (id) => tokens[id],
    revoked: (hash) => revoked[hash],
  };
}

const codes = (outcomes: ReturnType<typeof decideJoins>['outcomes']) =>
  outcomes.map((o) => (o.ok ? 'ok' : isAmalgamError(o.error) ? o.error.code : String(o.error)));

t.test('a batch spends a token use per successful join, never more than maxUses', async (t) => {
  const joins = ['a', 'b', 'c', 'd'].map((n) => ({ claim: claim(n), tokenId: 'abcdef' }));
  const decision = decideJoins(state({ abcdef: token(2) }), joins, NOW);
  t.same(codes(decision.outcomes), ['ok', 'ok', 'TOKEN_EXHAUSTED', 'TOKEN_EXHAUSTED']);
  t.same(
    decision.spent.map((s) => s.uses),
    [2],
  );
  t.same(
    decision.created.map((n) => n.name),
    ['a', 'b'],
  );
});

t.test('a failed claim spends nothing: the next join gets the use', async (t) => {
  const joins = [
    { claim: claim('a', 'sha256:k1'), tokenId: 'abcdef' },
    { claim: claim('a', 'sha256:k2'), tokenId: 'abcdef' }, // name taken by another key
    { claim: claim('b'), tokenId: 'abcdef' },
  ];
  const decision = decideJoins(state({ abcdef: token(2) }), joins, NOW);
  t.same(codes(decision.outcomes), ['ok', 'NAME_TAKEN', 'ok']);
  t.equal(decision.spent[0]?.uses, 2);
});

t.test('unlimited tokens count uses; deleted and expired tokens refuse at the claim', async (t) => {
  const one = [{ claim: claim('a'), tokenId: 'abcdef' }];
  t.equal(decideJoins(state({ abcdef: token(undefined, 7) }), one, NOW).spent[0]?.uses, 8);
  t.same(codes(decideJoins(state({}), one, NOW).outcomes), ['TOKEN_NOT_FOUND']);
  const expired = { ...token(), expiresAt: NOW - 1 };
  t.same(codes(decideJoins(state({ abcdef: expired }), one, NOW).outcomes), ['TOKEN_EXPIRED']);
});

t.test('a removed key is refused until its tombstone expires, and spends no use', async (t) => {
  const tombstone: RevokedRecord = { name: 'old', removedAt: 0, expiresAt: NOW + 1 };
  const one = [{ claim: claim('new', 'sha256:gone'), tokenId: 'abcdef' }];
  const refused = decideJoins(state({ abcdef: token(1) }, { 'sha256:gone': tombstone }), one, NOW);
  t.same(codes(refused.outcomes), ['CREDENTIAL_REVOKED']);
  t.same(refused.spent, []);
  const later = decideJoins(
    state({ abcdef: token(1) }, { 'sha256:gone': tombstone }),
    one,
    NOW + 1,
  );
  t.same(codes(later.outcomes), ['ok'], 'no certificate of the key can be valid any more');
});

t.test(
  'the rate limiter: a burst, then RATE_LIMITED with a retry delay; refills; LRU-bounded',
  async (t) => {
    let now = 0;
    const limiter = new JoinRateLimiter({ burst: 3, ratePerSecond: 0.5, maxSources: 2 }, () => now);
    for (let i = 0; i < 3; i++) limiter.admit('10.0.0.1');
    t.throws(() => limiter.admit('10.0.0.1'), {
      code: 'RATE_LIMITED',
      details: { source: '10.0.0.1', retryAfterSeconds: 2 },
    });
    limiter.admit('10.0.0.2'); // another address is served
    now = 2000; // one join back
    limiter.admit('10.0.0.1');
    t.throws(() => limiter.admit('10.0.0.1'), { code: 'RATE_LIMITED' });
    limiter.admit('10.0.0.3'); // evicts 10.0.0.2, the least recently seen
    t.same(limiter.stats(), { sources: 2, refusedTotal: 2, evictedTotal: 1 });
  },
);

t.test('one join contributes at most maxContributedBytes', async (t) => {
  const request = { capacity: { contributedBytes: 10 } } as JoinRequest;
  checkContribution(request, 10);
  t.throws(() => checkContribution(request, 9), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'capacity.contributedBytes', limit: 9 },
  });
});

const node = (identity: string, state: NodeRecord['state'] = 'Ready'): NodeRecord => ({
  ...claim('a', identity),
  roles: [],
  labels: {},
  state,
  joinedAt: 0,
});

t.test("a node credential holds only for its node record's key", async (t) => {
  t.same(verdictFor(node('sha256:k'), 'sha256:k'), { valid: true });
  t.match(verdictFor(node('sha256:k'), 'sha256:other'), { valid: false, reason: /another key/ });
  t.match(verdictFor(undefined, 'sha256:k'), { valid: false, reason: /removed/ });
  t.match(verdictFor(node('sha256:k', 'Removed'), 'sha256:k'), { valid: false });
});

t.test('the node checker reads the mirror; only a refusal syncs it, once per key', async (t) => {
  const kvs = new Map<string, { value: string; modRevision: number }>();
  let syncs = 0;
  let onSync = () => {};
  const mirror = {
    get: (key: string) => {
      const kv = kvs.get(key);
      return (
        kv && { key, value: kv.value, modRevision: kv.modRevision, createRevision: 1, version: 1 }
      );
    },
    sync: async () => {
      syncs++;
      onSync();
      return 0;
    },
  } as unknown as Mirror;
  const check = nodeCredentialChecker(mirror);
  kvs.set(nodeKeys.node('a'), { value: JSON.stringify(node('sha256:k')), modRevision: 2 });
  t.same(await check('a', 'sha256:k'), { valid: true });
  t.equal(syncs, 0, 'an accepted call costs no store read');
  // A node that joined through another replica: the mirror catches up on the sync.
  onSync = () =>
    kvs.set(nodeKeys.node('b'), { value: JSON.stringify(node('sha256:kb')), modRevision: 3 });
  t.same(await check('b', 'sha256:kb'), { valid: true });
  t.equal(syncs, 1);
  onSync = () => {};
  kvs.delete(nodeKeys.node('a'));
  t.match(await check('a', 'sha256:k'), { valid: false });
  t.match(await check('a', 'sha256:k'), { valid: false });
  t.equal(syncs, 2, 'a revoked certificate flood costs one sync');
});

t.test('the gRPC peer address without its port', async (t) => {
  t.equal(peerAddress('ipv4:127.0.0.3:5555'), '127.0.0.3');
  t.equal(peerAddress('ipv6:[::1]:5555'), '::1');
  t.equal(peerAddress('127.0.0.1:1'), '127.0.0.1');
  t.equal(peerAddress('unix:/tmp/sock'), '/tmp/sock');
});
