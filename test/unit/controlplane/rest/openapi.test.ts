/**
 * The OpenAPI document against the error catalogue and against the app that
 * serves it: a code an operation lists must exist (with the status it is
 * listed under); every catalogue code must be in the Problem code enum, so an
 * undocumented code fails here; request schemas must bound what they accept.
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import t from 'tap';
import { parse } from 'yaml';
import type {
  AllocateSegmentRequest,
  ClusterInfo,
  CreatedToken,
  CreateTokenRequest,
  HeartbeatRequest,
  JoinRequest,
  JoinResult,
  LoadReport,
  MemoryLayoutView,
  NodeCapacity,
  NodeState,
  NodeView,
  PageServerEndpoint,
  SegmentView,
  TokenUsage,
  TokenView,
} from '../../../../services/api/contracts.ts';
import { handlers } from '../../../../services/controlplane/rest/handlers.ts';
import {
  type JsonSchema,
  OPENAPI_PATH,
  parseRestApi,
} from '../../../../services/controlplane/rest/openapi.ts';
import { ERRORS } from '../../../../services/core/errors.ts';
import type { MemoryLayout, NodeRange } from '../../../../services/core/memory-layout.ts';
import type { Extent } from '../../../../services/core/segments.ts';
import { api, resolveSchema, startHarness } from './rest-harness.ts';

const catalogue = Object.keys(ERRORS) as (keyof typeof ERRORS)[];

t.test(
  'every code an operation lists is in the catalogue, under its own HTTP status',
  async (t) => {
    let listed = 0;
    for (const op of api.operations) {
      for (const response of op.responses.filter((r) => r.status >= 400)) {
        t.ok(response.errorCodes.length > 0, `${op.operationId} ${response.status} lists codes`);
        for (const code of response.errorCodes) {
          listed++;
          const spec = (ERRORS as Record<string, { http: number }>)[code];
          t.ok(spec, `${op.operationId} ${response.status}: ${code} is in the catalogue`);
          t.equal(spec?.http, response.status, `${op.operationId}: ${code} is HTTP ${spec?.http}`);
        }
      }
    }
    t.ok(listed > 50);
  },
);

t.test('every catalogue code is in the Problem code enum (and nothing else is)', async (t) => {
  const problem = resolveSchema({ $ref: 'Problem#' }) as {
    properties: { code: { enum: string[] } };
  };
  const documented = problem.properties.code.enum;
  for (const code of catalogue) t.ok(documented.includes(code), `${code} is documented`);
  t.same([...documented].sort(), [...catalogue].sort(), 'the enum is exactly the catalogue');
});

t.test('every operation has a handler and every handler an operation', async (t) => {
  t.same(api.operations.map((op) => op.operationId).sort(), Object.keys(handlers).sort());
});

t.test(
  'every mutating /v1 operation documents 400/401 or token failures, 413, 415 and 500',
  async (t) => {
    for (const op of api.operations.filter((o) => o.method !== 'GET')) {
      const statuses = op.responses.map((r) => r.status);
      for (const status of [400, 401, 413, 415, 500, 503]) {
        t.ok(statuses.includes(status), `${op.operationId} documents ${status}`);
      }
    }
  },
);

/** Every schema reachable from `schema`, references followed once. */
function* reachable(schema: JsonSchema, seen = new Set<unknown>()): Generator<JsonSchema> {
  const s = resolveSchema(schema);
  if (seen.has(s)) return;
  seen.add(s);
  yield s;
  const children: unknown[] = [
    ...Object.values((s.properties ?? {}) as Record<string, unknown>),
    s.items,
    typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined,
    ...((s.oneOf ?? []) as unknown[]),
    ...((s.anyOf ?? []) as unknown[]),
    ...((s.allOf ?? []) as unknown[]),
  ];
  for (const child of children) {
    if (typeof child === 'object' && child !== null) yield* reachable(child as JsonSchema, seen);
  }
}

t.test(
  'request schemas refuse unknown fields and bound every number, string and list',
  async (t) => {
    for (const op of api.operations) {
      const roots = [op.body?.schema, op.params].filter((s): s is JsonSchema => s !== undefined);
      for (const root of roots) {
        for (const s of reachable(root)) {
          const where = `${op.operationId}: ${JSON.stringify(s).slice(0, 80)}`;
          if (s.type === 'object') {
            t.not(
              s.additionalProperties,
              undefined,
              `${where} says what it does with other fields`,
            );
            t.not(s.additionalProperties, true, `${where} does not accept any field`);
            if (typeof s.additionalProperties === 'object')
              t.type(s.maxProperties, 'number', where);
          }
          if (s.type === 'integer' || s.type === 'number') {
            t.type(s.minimum, 'number', `${where} has a minimum`);
            t.type(s.maximum, 'number', `${where} has a maximum`);
          }
          if (s.type === 'string' && s.enum === undefined && s.const === undefined) {
            t.ok(
              typeof s.maxLength === 'number' || typeof s.pattern === 'string',
              `${where} bounds its length`,
            );
          }
          if (s.type === 'array') t.type(s.maxItems, 'number', `${where} has maxItems`);
        }
      }
    }
  },
);

t.test('the document is checked when it is read', async (t) => {
  const text = readFileSync(OPENAPI_PATH, 'utf8');
  const doc = parse(text);
  // biome-ignore lint/suspicious/noExplicitAny: a parsed YAML document, edited in place by each case
  const broken = (mutate: (d: any) => void) => {
    const copy = structuredClone(doc);
    mutate(copy);
    return () => parseRestApi(JSON.stringify(copy));
  };
  t.throws(
    broken((d) => delete d.paths['/v1/cluster'].get['x-amalgam-caller']),
    /x-amalgam-caller/,
  );
  t.throws(
    broken((d) => delete d.paths['/v1/cluster'].get.operationId),
    /operationId/,
  );
  t.throws(
    broken((d) => {
      d.paths['/v1/cluster'].get.responses['401'] = { description: 'x' };
    }),
    /list its codes/,
  );
  t.throws(
    broken((d) => {
      d.openapi = '3.0.3';
    }),
    /OpenAPI 3.1/,
  );
});

t.test('/openapi.json serves the document and /docs renders it without the network', async (t) => {
  const { call } = await startHarness(t);
  const res = await call(undefined, { url: '/openapi.json' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  t.same(res.json(), parse(readFileSync(OPENAPI_PATH, 'utf8')));

  const docs = await call(undefined, { url: '/docs' });
  t.equal(docs.statusCode, 200);
  t.match(docs.headers['content-type'], /^text\/html/);
  for (const op of api.operations) t.match(docs.body, op.operationId);
  t.notMatch(docs.body, /<script|https?:\/\/(?!amalgam\.dev)[^"<\s]*\.(js|css)/, 'loads nothing');
});

t.test('a handler whose answer breaks its schema is a 500, logged, never sent', async (t) => {
  const { buildApp } = await import('../../../../services/controlplane/rest/app.ts');
  const lines: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => lines.push(line) });
  const runtime = {
    cluster: { info: async () => ({ name: 'x', caCertHash: 'not-a-hash', store: 'embedded' }) },
    stats: async () => {
      throw new Error('no stats');
    },
  };
  const app = buildApp({
    runtime: runtime as never,
    logger,
    registry: new Registry(),
    identify: () => ({ kind: 'admin' }),
  });
  t.teardown(() => app.close());
  const res = await app.inject({ url: '/v1/cluster', headers: { 'x-request-id': 'bad-answer-1' } });
  t.equal(res.statusCode, 500);
  t.equal(res.json().code, 'INTERNAL');
  t.equal(res.json().requestId, 'bad-answer-1');
  t.notMatch(res.body, /not-a-hash/, 'the bad answer is not sent');
  const logged = lines.map((l) => JSON.parse(l));
  t.ok(
    logged.some((l) => l.reqId === 'bad-answer-1' && l.level >= 50),
    'logged as an error with the request id',
  );
});

t.test('request ids: a sane x-request-id is kept, anything else is replaced', async (t) => {
  const { call } = await startHarness(t);
  const kept = await call(undefined, {
    url: '/healthz',
    headers: { 'x-request-id': 'abc-123.x:y' },
  });
  t.equal(kept.headers['x-request-id'], 'abc-123.x:y');
  for (const bad of ['a'.repeat(200), 'has space', 'ünï', '']) {
    const res = await call(undefined, { url: '/v1/nowhere', headers: { 'x-request-id': bad } });
    const id = res.headers['x-request-id'];
    t.match(id, /^[0-9a-f-]{36}$/, `${JSON.stringify(bad).slice(0, 20)} replaced by a UUID`);
    t.equal(res.json().requestId, id);
    t.equal(res.json().code, 'NOT_FOUND');
  }
});

/**
 * `required` or `optional` for each field of T. A literal of this type must
 * name every field of T with its optionality, so a field added to, removed
 * from or made optional in contracts.ts breaks the typecheck of this file.
 */
type Fields<T> = {
  [K in keyof T]-?: Record<never, never> extends Pick<T, K> ? 'optional' : 'required';
};

const mirrors: [string, Record<string, 'required' | 'optional'>][] = [
  [
    'ClusterInfo',
    {
      name: 'required',
      caCertHash: 'required',
      store: 'required',
      nodes: 'required',
      leader: 'required',
    } satisfies Fields<ClusterInfo>,
  ],
  [
    'TokenView',
    {
      id: 'required',
      description: 'required',
      usages: 'required',
      createdAt: 'required',
      expiresAt: 'required',
      uses: 'required',
      maxUses: 'required',
    } satisfies Fields<TokenView>,
  ],
  [
    'CreatedToken',
    {
      id: 'required',
      description: 'required',
      usages: 'required',
      createdAt: 'required',
      expiresAt: 'required',
      uses: 'required',
      maxUses: 'required',
      token: 'required',
    } satisfies Fields<CreatedToken>,
  ],
  [
    'CreateTokenRequest',
    {
      ttlSeconds: 'optional',
      description: 'optional',
      usages: 'optional',
      maxUses: 'optional',
    } satisfies Fields<CreateTokenRequest>,
  ],
  [
    'NodeCapacity',
    {
      memoryBytes: 'required',
      swapBytes: 'required',
      contributedBytes: 'required',
      cpus: 'required',
      cpuSpeed: 'required',
    } satisfies Fields<NodeCapacity>,
  ],
  [
    'LoadReport',
    {
      load1: 'required',
      load5: 'required',
      load15: 'required',
      memoryUsedBytes: 'required',
      processes: 'required',
    } satisfies Fields<LoadReport>,
  ],
  ['AddressRange', { start: 'required', size: 'required' } satisfies Fields<NodeView['range']>],
  [
    'NodeView',
    {
      name: 'required',
      roles: 'required',
      labels: 'required',
      capacity: 'required',
      state: 'required',
      range: 'required',
      identity: 'required',
      joinedAt: 'required',
      lastHeartbeatAt: 'required',
      load: 'required',
      pageserver: 'required',
    } satisfies Fields<NodeView>,
  ],
  [
    'PageServerEndpoint',
    { address: 'required', tls: 'required' } satisfies Fields<PageServerEndpoint>,
  ],
  [
    'HeartbeatRequest',
    {
      load1: 'required',
      load5: 'required',
      load15: 'required',
      memoryUsedBytes: 'required',
      processes: 'required',
      pageserver: 'optional',
    } satisfies Fields<HeartbeatRequest>,
  ],
  [
    'JoinRequest',
    {
      token: 'required',
      name: 'required',
      csr: 'required',
      capacity: 'required',
      roles: 'optional',
      labels: 'optional',
    } satisfies Fields<JoinRequest>,
  ],
  [
    'JoinResult',
    {
      node: 'required',
      certificate: 'required',
      caCertificate: 'required',
      rejoined: 'required',
    } satisfies Fields<JoinResult>,
  ],
  ['Extent', { node: 'required', start: 'required', size: 'required' } satisfies Fields<Extent>],
  [
    'SegmentView',
    {
      id: 'required',
      size: 'required',
      placement: 'required',
      extents: 'required',
      owner: 'required',
      createdAt: 'required',
    } satisfies Fields<SegmentView>,
  ],
  [
    'AllocateSegmentRequest',
    {
      size: 'required',
      placement: 'optional',
      id: 'optional',
    } satisfies Fields<AllocateSegmentRequest>,
  ],
  [
    'NodeRange',
    { node: 'required', start: 'required', size: 'required' } satisfies Fields<NodeRange>,
  ],
  [
    'MemoryLayout',
    {
      spaceStart: 'required',
      spaceEnd: 'required',
      ranges: 'required',
    } satisfies Fields<MemoryLayout>,
  ],
  [
    'MemoryLayoutView',
    {
      layout: 'required',
      allocatedBytes: 'required',
      freeBytes: 'required',
      segments: 'required',
    } satisfies Fields<MemoryLayoutView>,
  ],
];

t.test('schemas mirror contracts.ts: the same fields, the same ones required', async (t) => {
  for (const [name, fields] of mirrors) {
    const schema = resolveSchema({ $ref: `${name}#` }) as {
      properties: Record<string, unknown>;
      required?: string[];
    };
    t.same(Object.keys(schema.properties).sort(), Object.keys(fields).sort(), `${name} fields`);
    t.same(
      [...(schema.required ?? [])].sort(),
      Object.entries(fields)
        .filter(([, v]) => v === 'required')
        .map(([k]) => k)
        .sort(),
      `${name} required fields`,
    );
  }
  const enums = (name: string) => (resolveSchema({ $ref: `${name}#` }).enum as string[]).sort();
  t.same(
    enums('NodeState'),
    (['Joining', 'Ready', 'NotReady', 'Draining', 'Removed'] satisfies NodeState[]).sort(),
  );
  t.same(enums('TokenUsage'), ['join'] satisfies TokenUsage[]);
});
