/**
 * The operational endpoints, over a fake runtime that can be made to fail:
 * readiness follows `runtime.ready()`, metrics survive a failing `stats()`,
 * errors from the service become their catalogue problem. (Requests that
 * arrive while the app closes: test/integration/rest-server.test.ts.)
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import t from 'tap';
import { buildApp } from '../../../../services/controlplane/rest/app.ts';
import type {
  ControlPlaneRuntime,
  ControlPlaneStats,
} from '../../../../services/controlplane/service/contracts.ts';
import { AmalgamError } from '../../../../services/core/errors.ts';

const logger = pino({ level: 'silent' });

function fakeRuntime(overrides: Partial<ControlPlaneRuntime> = {}): ControlPlaneRuntime {
  const stats: ControlPlaneStats = {
    nodesByState: { Joining: 1, Ready: 2, NotReady: 0, Draining: 0, Removed: 0 },
    addressSpaceAllocatedBytes: 3 * 2 ** 21,
    addressSpaceFreeBytes: 2 ** 40,
    leader: true,
  };
  const unused = () => {
    throw new Error('not used by this test');
  };
  return {
    cluster: { info: unused },
    tokens: { create: unused, list: unused, delete: unused },
    nodes: {
      join: unused,
      list: unused,
      get: unused,
      heartbeat: unused,
      drain: unused,
      remove: unused,
    },
    memory: {
      layout: unused,
      allocateSegment: unused,
      listSegments: unused,
      getSegment: unused,
      freeSegment: unused,
    },
    stats: async () => stats,
    ready: async () => true,
    isLeader: () => true,
    close: async () => {},
    ...overrides,
  } as ControlPlaneRuntime;
}

function appWith(runtime: ControlPlaneRuntime) {
  const app = buildApp({
    runtime,
    logger,
    registry: new Registry(),
    identify: () => ({ kind: 'admin' }),
  });
  t.teardown(() => app.close());
  return app;
}

t.test('/readyz is 503 NO_QUORUM when the store does not answer (or ready() throws)', async (t) => {
  for (const ready of [async () => false, async () => Promise.reject(new Error('boom'))]) {
    const app = appWith(fakeRuntime({ ready }));
    const res = await app.inject({ url: '/readyz' });
    t.equal(res.statusCode, 503);
    t.equal(res.json().code, 'NO_QUORUM');
    t.equal(res.headers['retry-after'], '1');
    t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'alive all the same');
  }
});

t.test(
  '/metrics: cluster gauges from stats(), and a scrape that survives a failing stats()',
  async (t) => {
    let fail = false;
    const app = appWith(
      fakeRuntime({
        stats: async () => {
          if (fail) throw new AmalgamError('NO_QUORUM');
          return {
            nodesByState: { Joining: 1, Ready: 2, NotReady: 0, Draining: 0, Removed: 0 },
            addressSpaceAllocatedBytes: 6291456,
            addressSpaceFreeBytes: 1099511627776,
            leader: true,
          };
        },
      }),
    );
    const ok = await app.inject({ url: '/metrics' });
    t.equal(ok.statusCode, 200);
    t.match(ok.body, /^amalgam_nodes\{state="Ready"\} 2$/m);
    t.match(ok.body, /^amalgam_nodes\{state="Joining"\} 1$/m);
    t.match(ok.body, /^amalgam_memory_address_space_allocated_bytes 6291456$/m);
    t.match(ok.body, /^amalgam_memory_address_space_free_bytes 1099511627776$/m);
    t.match(ok.body, /^amalgam_controller_leader 1$/m);
    t.match(ok.body, /^amalgam_controlplane_stats_up 1$/m);

    fail = true;
    const degraded = await app.inject({ url: '/metrics' });
    t.equal(degraded.statusCode, 200, 'the scrape still answers');
    t.match(degraded.body, /^amalgam_controlplane_stats_up 0$/m);
    t.match(degraded.body, /^amalgam_nodes\{state="Ready"\} 2$/m, 'last known values are kept');
    t.match(
      degraded.body,
      /^amalgam_http_requests_total\{route="\/metrics",method="GET",code="200"\} 1$/m,
    );
  },
);

t.test(
  'service errors keep their code, status and details; other errors are a bare INTERNAL',
  async (t) => {
    const app = appWith(
      fakeRuntime({
        cluster: {
          info: async () => {
            throw new AmalgamError('NO_QUORUM', 'etcd unreachable', { requestId: 'txn-1' });
          },
        },
        nodes: {
          ...fakeRuntime().nodes,
          list: async () => {
            throw new TypeError('secret internal detail');
          },
        },
      }),
    );
    const noQuorum = await app.inject({ url: '/v1/cluster' });
    t.equal(noQuorum.statusCode, 503);
    t.match(noQuorum.json(), {
      code: 'NO_QUORUM',
      detail: /etcd unreachable$/,
      requestId: noQuorum.headers['x-request-id'],
    });
    t.equal(noQuorum.json().requestId, noQuorum.headers['x-request-id']);
    t.equal(noQuorum.headers['retry-after'], '1');

    const internal = await app.inject({ url: '/v1/nodes' });
    t.equal(internal.statusCode, 500);
    t.equal(internal.json().code, 'INTERNAL');
    t.notMatch(internal.body, /secret internal detail/, 'nothing of the bug leaks');
  },
);

t.test('details never overwrite the members of the problem document', async (t) => {
  const app = appWith(
    fakeRuntime({
      cluster: {
        info: async () => {
          throw new AmalgamError('CONTENDED', 'x', { code: 'FAKE', status: 200, keys: ['/k'] });
        },
      },
    }),
  );
  const res = await app.inject({ url: '/v1/cluster' });
  t.equal(res.statusCode, 503);
  t.match(res.json(), { code: 'CONTENDED', status: 503, keys: ['/k'] });
});
