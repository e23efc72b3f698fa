/**
 * Bad input on every route of openapi/amalgam.yaml (the document is iterated,
 * so a new route is covered the day it is added): malformed JSON, wrong types,
 * unknown fields, missing fields, out-of-range numbers, overlong strings,
 * oversized bodies, wrong content types, bad path parameters. Each must get a
 * 4xx problem document with a catalogue code the operation documents (and the
 * field, for INVALID_ARGUMENT); not one may get a 5xx.
 */
import type { LightMyRequestResponse as Response } from 'fastify';
import t, { type Test } from 'tap';
import { DEFAULT_BODY_LIMIT } from '../../../../services/controlplane/rest/app.ts';
import { NO_BODY_LIMIT } from '../../../../services/controlplane/rest/doors.ts';
import type { JsonSchema, Operation } from '../../../../services/controlplane/rest/openapi.ts';
import {
  api,
  checkProblem,
  documentedCodes,
  type Harness,
  resolveSchema,
  rightfulCaller,
  startHarness,
  urlOf,
} from './rest-harness.ts';

const serverErrors: string[] = [];
let answered = 0;

type Path = (string | number)[];

function fieldOf(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

interface BodyCase {
  name: string;
  body: unknown;
  /** The field the 400 must name. */
  field: string;
}

/** Values of the wrong JSON type for a schema of `type`. */
function wrongTypes(type: unknown): unknown[] {
  const all: Record<string, unknown> = {
    string: 'x',
    integer: 7,
    number: 7.5,
    boolean: true,
    object: { a: 1 },
    array: ['x'],
    null: null,
  };
  return Object.entries(all)
    .filter(([name]) => name !== type && !(type === 'number' && name === 'integer'))
    .map(([, value]) => value);
}

/** Bad values for the field at `path` whose schema is `schema` (`value` is its valid value, if any). */
function* badValues(schema: JsonSchema, value: unknown, path: Path): Generator<BodyCase> {
  const s = resolveSchema(schema);
  const field = fieldOf(path);
  if (Array.isArray(s.oneOf) || Array.isArray(s.anyOf)) {
    for (const bad of ['x', 42, [], null, {}, { mode: 'nope' }]) {
      yield { name: `${field} = ${JSON.stringify(bad)}`, body: bad, field };
    }
    return;
  }
  for (const bad of wrongTypes(s.type)) {
    yield { name: `${field} of type ${bad === null ? 'null' : typeof bad}`, body: bad, field };
  }
  if (s.type === 'integer' || s.type === 'number') {
    const bads = new Set<number>([-1, 1e308, -1e308, 2 ** 53 + 2]);
    if (typeof s.minimum === 'number') bads.add(s.minimum - 1);
    if (typeof s.maximum === 'number') bads.add(s.maximum + 1);
    if (s.type === 'integer') bads.add(1.5);
    for (const bad of bads) {
      const inRange =
        (typeof s.minimum !== 'number' || bad >= s.minimum) &&
        (typeof s.maximum !== 'number' || bad <= s.maximum) &&
        (s.type !== 'integer' || Number.isInteger(bad));
      if (!inRange) yield { name: `${field} = ${bad}`, body: bad, field };
    }
  }
  if (s.type === 'string') {
    if (typeof s.maxLength === 'number') {
      yield { name: `${field} too long`, body: 'a'.repeat(s.maxLength + 1), field };
    }
    if (typeof s.minLength === 'number' && s.minLength > 0) {
      yield { name: `${field} empty`, body: '', field };
    }
    if (typeof s.pattern === 'string') {
      for (const bad of ['NOT VALID!', '-', 'a/../b', 'ä', '\u0000']) {
        if (!new RegExp(s.pattern).test(bad))
          yield { name: `${field} = ${JSON.stringify(bad)}`, body: bad, field };
      }
    }
    if (Array.isArray(s.enum) || s.const !== undefined) {
      yield { name: `${field} not a member`, body: 'not-a-member', field };
    }
  }
  if (s.type === 'array') {
    const item = Array.isArray(value) && value.length > 0 ? value[0] : 'x';
    if (typeof s.maxItems === 'number') {
      yield {
        name: `${field} too many items`,
        body: Array.from({ length: s.maxItems + 1 }, () => item),
        field,
      };
    }
    if (typeof s.minItems === 'number' && s.minItems > 0) {
      yield { name: `${field} empty`, body: [], field };
    }
    if (s.items) {
      for (const c of badValues(s.items as JsonSchema, item, [...path, 0])) {
        yield { ...c, body: [c.body] };
      }
    }
  }
  if (s.type === 'object') {
    const base = typeof value === 'object' && value !== null ? value : {};
    if (s.additionalProperties === false) {
      yield {
        name: `${field} with an unknown field`,
        body: { ...base, bogus: 1 },
        field: fieldOf([...path, 'bogus']),
      };
    } else if (typeof s.additionalProperties === 'object') {
      for (const c of badValues(s.additionalProperties as JsonSchema, undefined, [...path, 'k'])) {
        yield { ...c, body: { ...base, k: c.body } };
      }
    }
    if (typeof s.maxProperties === 'number') {
      const many = Object.fromEntries(
        Array.from({ length: s.maxProperties + 1 }, (_, i) => [`k${i}`, 'v']),
      );
      yield { name: `${field} too many properties`, body: many, field };
    }
    const properties = (s.properties ?? {}) as Record<string, JsonSchema>;
    for (const required of (s.required ?? []) as string[]) {
      const without = { ...(base as Record<string, unknown>) };
      delete without[required];
      yield {
        name: `${fieldOf([...path, required])} missing`,
        body: without,
        field: fieldOf([...path, required]),
      };
    }
    for (const [name, propertySchema] of Object.entries(properties)) {
      const current = (base as Record<string, unknown>)[name];
      for (const c of badValues(propertySchema, current, [...path, name])) {
        yield { ...c, body: { ...(base as Record<string, unknown>), [name]: c.body } };
      }
    }
  }
}

/** Whole-body cases for an operation with a JSON body: every field's bad values, at their place. */
function* bodyCases(op: Operation): Generator<BodyCase> {
  if (!op.body) return;
  const example = op.body.example;
  // Top level: badValues builds the body itself (path []), fields are named from the root.
  for (const c of badValues(op.body.schema, example, [])) {
    yield { ...c, field: c.field === '' ? 'body' : c.field };
  }
}

/** Raw payloads that are bad for any operation that reads a body. */
const RAW_CASES: {
  name: string;
  payload: string | Buffer;
  contentType?: string;
  status: number;
}[] = [
  { name: 'truncated JSON', payload: '{"a":', status: 400 },
  { name: 'trailing garbage', payload: '{"a":1}}', status: 400 },
  { name: 'single quotes', payload: "{'a':1}", status: 400 },
  { name: 'bare word', payload: 'nul', status: 400 },
  { name: 'NUL byte', payload: '\u0000', status: 400 },
  { name: 'invalid UTF-8', payload: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), status: 400 },
  { name: 'prototype poisoning', payload: '{"__proto__":{"polluted":1}}', status: 400 },
  {
    name: 'constructor poisoning',
    payload: '{"constructor":{"prototype":{"polluted":1}}}',
    status: 400,
  },
  { name: 'array', payload: '[]', status: 400 },
  { name: 'string', payload: '"s"', status: 400 },
  { name: 'number', payload: '1', status: 400 },
  { name: 'null', payload: 'null', status: 400 },
  { name: 'huge number', payload: '{"x":1e999999}', status: 400 },
  {
    name: 'deep nesting',
    payload: `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
    status: 400,
  },
  {
    name: 'oversized body',
    payload: JSON.stringify({ x: 'a'.repeat(DEFAULT_BODY_LIMIT) }),
    status: 413,
  },
  { name: 'text/plain', payload: '{}', contentType: 'text/plain', status: 415 },
  {
    name: 'form',
    payload: 'a=1',
    contentType: 'application/x-www-form-urlencoded',
    status: 415,
  },
  {
    name: 'multipart',
    payload: '--x\r\n\r\n--x--',
    contentType: 'multipart/form-data; boundary=x',
    status: 415,
  },
  { name: 'xml', payload: '<a/>', contentType: 'application/xml', status: 415 },
  { name: 'problem+json', payload: '{}', contentType: 'application/problem+json', status: 415 },
];

const BAD_PARAMS = [
  'UPPER',
  'a'.repeat(300),
  '-lead',
  'trail-',
  '..',
  'a b',
  'ä',
  '💩',
  '%00',
  'a/b',
  'a.b!',
];

function record(op: Operation, what: string, res: Response): void {
  answered++;
  if (res.statusCode >= 500) {
    serverErrors.push(
      `${op.method} ${op.path} ${what}: ${res.statusCode} ${res.body.slice(0, 200)}`,
    );
  }
}

/** Asserts a 4xx problem the operation documents (NOT_FOUND from the router is always possible). */
function expectRefused(
  t: Test,
  op: Operation,
  what: string,
  res: Response,
  expected: { status?: number; field?: string } = {},
) {
  record(op, what, res);
  const problem = checkProblem(t, res, `${op.method} ${op.path} ${what}`);
  if (!problem) return;
  const label = `${op.method} ${op.path} ${what}: ${res.statusCode} ${problem.code}`;
  if (expected.status !== undefined) t.equal(res.statusCode, expected.status, label);
  else t.ok(res.statusCode >= 400 && res.statusCode < 500, label);
  const documented = documentedCodes(op, res.statusCode);
  t.ok(
    documented.includes(problem.code) || problem.code === 'NOT_FOUND',
    `${label} is documented for the operation (${documented.join(', ')})`,
  );
  if (problem.code === 'INVALID_ARGUMENT') {
    t.type(problem.field, 'string', `${label} names the field`);
    if (expected.field !== undefined) t.equal(problem.field, expected.field, `${label} field`);
  }
}

let harness: Harness;
t.before(async () => {
  harness = await startHarness(t);
});

t.test('the valid examples of the document are not refused as bad input', async (t) => {
  for (const op of api.operations.filter((o) => o.body)) {
    const res = await harness.call(rightfulCaller(op), {
      method: op.method,
      url: urlOf(op),
      payload: op.body?.example as object,
    });
    record(op, 'example', res);
    t.not(
      res.statusCode,
      400,
      `${op.operationId} example: ${res.statusCode} ${res.body.slice(0, 200)}`,
    );
  }
});

for (const op of api.operations) {
  t.test(`${op.method} ${op.path}`, async (t) => {
    const caller = rightfulCaller(op);

    for (const [name] of Object.entries(op.paramExamples)) {
      for (const bad of BAD_PARAMS) {
        const params = { [name]: bad };
        const res = await harness.call(rightfulCaller(op, params), {
          method: op.method,
          url: urlOf(op, params),
          ...(op.body ? { payload: op.body.example as object } : {}),
        });
        expectRefused(t, op, `${name}=${JSON.stringify(bad)}`, res);
      }
      // Not even a valid URL.
      const res = await harness.call(caller, {
        method: op.method,
        url: op.path.replace(`{${name}}`, '%E0%A4%A'),
      });
      expectRefused(t, op, `${name} with a broken percent-encoding`, res);
    }

    if (op.method === 'GET') return;

    for (const c of RAW_CASES) {
      const res = await harness.call(caller, {
        method: op.method,
        url: urlOf(op),
        headers: { 'content-type': c.contentType ?? 'application/json' },
        payload: c.payload,
      });
      // An operation that takes no body accepts at most NO_BODY_LIMIT bytes (rest/doors.ts).
      const tooBig = !op.body && Buffer.byteLength(c.payload) > NO_BODY_LIMIT;
      expectRefused(t, op, c.name, res, { status: tooBig ? 413 : c.status });
    }
    const noType = await harness.call(caller, {
      method: op.method,
      url: urlOf(op),
      payload: Buffer.from('{}'),
      headers: { 'content-type': '' },
    });
    expectRefused(t, op, 'a body without a content type', noType);

    if (!op.body) {
      const res = await harness.call(caller, {
        method: op.method,
        url: urlOf(op),
        payload: { unexpected: true },
      });
      expectRefused(t, op, 'a body where none is taken', res, { status: 400, field: 'body' });
      return;
    }

    const empty = await harness.call(caller, {
      method: op.method,
      url: urlOf(op),
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expectRefused(t, op, 'an empty body', empty, { status: 400, field: 'body' });

    for (const c of bodyCases(op)) {
      const res = await harness.call(caller, {
        method: op.method,
        url: urlOf(op),
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(c.body),
      });
      expectRefused(t, op, c.name, res, { status: 400, field: c.field });
    }
  });
}

t.test('no bad input produced a 5xx', async (t) => {
  t.ok(answered > 500, `${answered} bad requests were answered`);
  t.same(serverErrors, [], 'no 5xx');
});
