/**
 * The TypeScript wire constants (services/api/wire.ts) against their source,
 * native/include/amalgam_wire.h: the header's text is parsed (#defines, enums,
 * packed header structs) and every value the TypeScript side defines must be
 * the header's. Both enums must match member for member, so a code added on
 * one side only fails here too. Opens no socket and runs no compiler.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  DEVICE_NAME_SIZE,
  HEADER_SIZE,
  MAX_PAYLOAD,
  Opcode,
  RequestField,
  ResponseField,
  ResponseFlag,
  STAT_NAMES,
  WIRE_MAGIC,
  WIRE_VERSION,
  WireStatus,
} from '../../../services/api/wire.ts';

const HEADER = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'native',
  'include',
  'amalgam_wire.h',
);

/** The C text without comments. */
function stripComments(c: string): string {
  return c.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
}

/** An integer constant expression of the header: literals with u suffixes, <<, |, parentheses. */
function evalConst(expr: string): number {
  const e = expr.trim().replace(/\b(0x[0-9a-f]+|\d+)u?l{0,2}\b/gi, '$1');
  if (!/^[\s0-9a-fx()<|]+$/i.test(e)) throw new Error(`not a constant expression: ${expr}`);
  return Number(new Function(`return (${e});`)()) >>> 0;
}

function parseDefines(c: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of c.matchAll(/^#define\s+(AMW_\w+)\s+(.+)$/gm)) {
    const [, name, value] = m as unknown as [string, string, string];
    if (/^[\s0-9a-fxul()<|]+$/i.test(value)) out.set(name, evalConst(value));
  }
  return out;
}

/** enum NAME { A = 1, B, ... }: members in order with their values (implicit ones counted on). */
function parseEnum(c: string, name: string): Map<string, number> {
  const m = new RegExp(`enum\\s+${name}\\s*\\{([^}]*)\\}`).exec(c);
  if (!m?.[1]) throw new Error(`enum ${name} not found in amalgam_wire.h`);
  const out = new Map<string, number>();
  let next = 0;
  for (const item of m[1].split(',')) {
    const [member, value] = item.split('=').map((s) => s.trim());
    if (!member) continue;
    const v = value === undefined ? next : evalConst(value);
    out.set(member, v);
    next = v + 1;
  }
  return out;
}

const TYPE_SIZE: Record<string, number> = { uint8_t: 1, uint16_t: 2, uint32_t: 4, uint64_t: 8 };

/** struct __attribute__((packed)) NAME { fields }: each field's byte offset, and the size. */
function parsePackedStruct(
  c: string,
  name: string,
): { offsets: Map<string, number>; size: number } {
  const m = new RegExp(
    `struct\\s+__attribute__\\(\\(packed\\)\\)\\s+${name}\\s*\\{([^}]*)\\}`,
  ).exec(c);
  if (!m?.[1]) throw new Error(`packed struct ${name} not found in amalgam_wire.h`);
  const offsets = new Map<string, number>();
  let off = 0;
  for (const decl of m[1].split(';')) {
    const f = /^\s*(\w+)\s+(\w+)\s*$/.exec(decl);
    if (!f) continue;
    const [, type, field] = f as unknown as [string, string, string];
    const size = TYPE_SIZE[type];
    if (size === undefined) throw new Error(`${name}.${field}: unknown type ${type}`);
    offsets.set(field, off);
    off += size;
  }
  return { offsets, size: off };
}

/** requestId -> request_id */
function snake(s: string): string {
  return s.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`);
}

/** requestsFetchAdd64 -> the enum amw_stat member it stands for. */
const STAT_MEMBER: Record<(typeof STAT_NAMES)[number], string> = {
  requestsRead: 'AMW_STAT_REQ_READ',
  requestsWrite: 'AMW_STAT_REQ_WRITE',
  requestsCas64: 'AMW_STAT_REQ_CAS64',
  requestsFetchAdd64: 'AMW_STAT_REQ_FETCH_ADD64',
  requestsStat: 'AMW_STAT_REQ_STAT',
  requestsInvalid: 'AMW_STAT_REQ_INVALID',
  bytesRead: 'AMW_STAT_BYTES_READ',
  bytesWritten: 'AMW_STAT_BYTES_WRITTEN',
  errors: 'AMW_STAT_ERRORS',
  connectionsAccepted: 'AMW_STAT_CONN_ACCEPTED',
  connectionsOpen: 'AMW_STAT_CONN_OPEN',
  rangeStart: 'AMW_STAT_RANGE_START',
  rangeSize: 'AMW_STAT_RANGE_SIZE',
};

const c = stripComments(readFileSync(HEADER, 'utf8'));
const defines = parseDefines(c);

function define(name: string): number | undefined {
  return defines.get(name);
}

t.test('scalar constants match the #defines', async (t) => {
  t.equal(WIRE_MAGIC, define('AMW_MAGIC'), 'AMW_MAGIC');
  t.equal(WIRE_VERSION, define('AMW_VERSION'), 'AMW_VERSION');
  t.equal(MAX_PAYLOAD, define('AMW_MAX_PAYLOAD'), 'AMW_MAX_PAYLOAD');
  t.equal(HEADER_SIZE, define('AMW_REQ_HEADER_SIZE'), 'AMW_REQ_HEADER_SIZE');
  t.equal(HEADER_SIZE, define('AMW_RESP_HEADER_SIZE'), 'AMW_RESP_HEADER_SIZE');
  t.equal(DEVICE_NAME_SIZE, define('AMW_DEV_NAME_SIZE'), 'AMW_DEV_NAME_SIZE');
  for (const [flag, value] of Object.entries(ResponseFlag)) {
    t.equal(value, define(`AMW_RF_${flag}`), `AMW_RF_${flag}`);
  }
});

t.test('op codes are enum amw_opcode, member for member', async (t) => {
  const e = parseEnum(c, 'amw_opcode');
  const ts = new Map(Object.entries(Opcode).map(([k, v]) => [`AMW_OP_${k}`, v]));
  t.same([...ts.entries()].sort(), [...e.entries()].sort());
});

t.test('status codes are enum amw_status, member for member', async (t) => {
  const e = parseEnum(c, 'amw_status');
  const ts = new Map(
    Object.entries(WireStatus).map(([k, v]) => [k === 'OK' ? 'AMW_OK' : `AMW_${k}`, v]),
  );
  t.same([...ts.entries()].sort(), [...e.entries()].sort());
});

t.test('STAT counters are enum amw_stat, in payload order', async (t) => {
  const e = parseEnum(c, 'amw_stat');
  t.equal(STAT_NAMES.length, e.get('AMW_STAT_COUNT'), 'AMW_STAT_COUNT');
  STAT_NAMES.forEach((name, i) => {
    t.equal(e.get(STAT_MEMBER[name]), i, `${name} is ${STAT_MEMBER[name]}`);
  });
});

t.test('header field offsets are those of the packed structs', async (t) => {
  const cases = [
    ['amw_req_header', RequestField],
    ['amw_resp_header', ResponseField],
  ] as const;
  for (const [struct, fields] of cases) {
    const { offsets, size } = parsePackedStruct(c, struct);
    t.equal(size, HEADER_SIZE, `sizeof(struct ${struct})`);
    const ts = new Map(Object.entries(fields).map(([k, v]) => [snake(k), v]));
    t.same([...ts.entries()].sort(), [...offsets.entries()].sort(), `struct ${struct}`);
  }
});

t.test('the parser reads what it claims to (a changed value is seen)', async (t) => {
  const changed = c.replace(/AMW_OP_WRITE = 2/, 'AMW_OP_WRITE = 12');
  t.equal(parseEnum(changed, 'amw_opcode').get('AMW_OP_WRITE'), 12);
  t.equal(parseEnum(changed, 'amw_opcode').get('AMW_OP_CAS64'), 3);
  t.equal(evalConst('(1u << 20)'), 1 << 20);
  t.equal(evalConst('0x474c4d41u'), 0x474c4d41);
  t.throws(() => evalConst('process.exit(1)'));
});
