/**
 * The chaos checker: reads a history (history.ts) and the final state read after every fault was
 * healed, and lists every violation of amalgam's guarantees. Pure: no I/O, so it runs on any
 * saved history (`readHistory(file)`).
 *
 * Checks (each a function of the same context; a feature that adds a unique thing adds a check):
 *  - `ranges-overlap`:   no two acknowledged node ranges of different nodes overlap; no two
 *                        acknowledged segments' extents overlap; the final layout agrees.
 *  - `name-twice`:       a node name is acknowledged to one identity (key) only; a segment id to
 *                        one allocation only.
 *  - `lost-write`:       every acknowledged join, allocation and PID block is in the final state,
 *                        unchanged.
 *  - `pid-twice`:        no two acknowledged PID-block claims hold a PID in common (each claim is
 *                        its own block, even of one owner); the final PID table agrees.
 *  - `minority-ack`:     no operation sent to a machine on the minority side of a partition, and
 *                        begun and ended while it was there, was acknowledged.
 */
import type { HistoryEvent, NemesisEvent, OpEvent } from './history.ts';

export interface Range {
  start: number;
  size: number;
}
export interface Extent extends Range {
  node: string;
}
export interface JoinOk {
  name: string;
  identity: string;
  range: Range;
}
export interface AllocateOk {
  id: string;
  size: number;
  extents: Extent[];
}
/** An acknowledged PID-block claim (the API's `PidBlock`). */
export interface PidBlockOk {
  start: number;
  size: number;
  owner: string;
  claimedAt: number;
}
export interface FinalState {
  nodes: JoinOk[];
  segments: AllocateOk[];
  /** The committed PID table's blocks. */
  pidBlocks: PidBlockOk[];
}

export interface Violation {
  check: string;
  detail: string;
}

export interface CheckContext {
  events: HistoryEvent[];
  final: FinalState;
  /** Control-plane machines (the quorum is counted over these). */
  control: string[];
  /** Pairs of invoke and completion, by op id. */
  ops: { invoke: OpEvent; done: OpEvent | undefined }[];
}

export type Check = (ctx: CheckContext) => Violation[];

const end = (r: Range): number => r.start + r.size;
const overlaps = (a: Range, b: Range): boolean => a.start < end(b) && b.start < end(a);
const hex = (n: number): string => `0x${n.toString(16)}`;
const fmt = (r: Range): string => `${hex(r.start)}-${hex(end(r))}`;

function okValues<T>(ctx: CheckContext, f: string): { value: T; op: OpEvent }[] {
  return ctx.ops
    .filter((o) => o.invoke.f === f && o.done?.type === 'ok')
    .map((o) => ({ value: (o.done as OpEvent).value as T, op: o.invoke }));
}

/** Intervals that overlap among owners that differ (sorted sweep). */
function overlapping<T extends Range>(
  items: { owner: string; range: T }[],
): [string, string, T, T][] {
  const sorted = [...items].sort((a, b) => a.range.start - b.range.start);
  const found: [string, string, T, T][] = [];
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i] as { owner: string; range: T };
    for (let j = i + 1; j < sorted.length; j++) {
      const b = sorted[j] as { owner: string; range: T };
      if (b.range.start >= end(a.range)) break;
      if (a.owner !== b.owner && overlaps(a.range, b.range))
        found.push([a.owner, b.owner, a.range, b.range]);
    }
  }
  return found;
}

export const rangesDisjoint: Check = (ctx) => {
  const v: Violation[] = [];
  const joins = okValues<JoinOk>(ctx, 'join');
  const nodeRanges = new Map<string, { owner: string; range: Range }>();
  for (const { value } of joins) {
    const owner = `${value.name}/${value.identity}`;
    nodeRanges.set(`${owner}@${value.range.start}`, { owner, range: value.range });
  }
  for (const [a, b, ra, rb] of overlapping([...nodeRanges.values()])) {
    v.push({
      check: 'ranges-overlap',
      detail: `acknowledged ranges of ${a} ${fmt(ra)} and ${b} ${fmt(rb)} overlap`,
    });
  }
  const extents: { owner: string; range: Extent }[] = [];
  for (const { value } of okValues<AllocateOk>(ctx, 'allocate')) {
    for (const e of value.extents) extents.push({ owner: value.id, range: e });
  }
  const seen = new Set<string>();
  for (const [a, b, ra, rb] of overlapping(extents)) {
    const key = `${a}|${b}|${ra.start}|${rb.start}`;
    if (seen.has(key)) continue;
    seen.add(key);
    v.push({
      check: 'ranges-overlap',
      detail: `acknowledged segments ${a} ${fmt(ra)} and ${b} ${fmt(rb)} overlap`,
    });
  }
  for (const [a, b, ra, rb] of overlapping(
    ctx.final.nodes.map((n) => ({ owner: n.name, range: n.range })),
  )) {
    v.push({
      check: 'ranges-overlap',
      detail: `final ranges of ${a} ${fmt(ra)} and ${b} ${fmt(rb)} overlap`,
    });
  }
  const finalExtents = ctx.final.segments.flatMap((s) =>
    s.extents.map((e) => ({ owner: s.id, range: e })),
  );
  for (const [a, b, ra, rb] of overlapping(finalExtents)) {
    v.push({
      check: 'ranges-overlap',
      detail: `final segments ${a} ${fmt(ra)} and ${b} ${fmt(rb)} overlap`,
    });
  }
  // Every final extent lies inside its node's final range.
  const byName = new Map(ctx.final.nodes.map((n) => [n.name, n.range]));
  for (const s of ctx.final.segments) {
    for (const e of s.extents) {
      const r = byName.get(e.node);
      if (!r || e.start < r.start || end(e) > end(r)) {
        v.push({
          check: 'ranges-overlap',
          detail: `segment ${s.id} extent ${fmt(e)} is outside node ${e.node}'s range`,
        });
      }
    }
  }
  return v;
};

export const namesUnique: Check = (ctx) => {
  const v: Violation[] = [];
  const holders = new Map<string, Set<string>>();
  for (const { value, op } of okValues<JoinOk>(ctx, 'join')) {
    const sent = (op.value as { identity?: string }).identity;
    if (sent !== undefined && sent !== value.identity) {
      v.push({
        check: 'name-twice',
        detail: `join of ${value.name} by ${sent} was answered with identity ${value.identity}`,
      });
    }
    const set = holders.get(value.name) ?? new Set();
    set.add(value.identity);
    holders.set(value.name, set);
  }
  for (const [name, set] of holders) {
    if (set.size > 1)
      v.push({
        check: 'name-twice',
        detail: `node name ${name} acknowledged to ${set.size} identities: ${[...set].join(', ')}`,
      });
  }
  const segments = new Map<string, string>();
  for (const { value } of okValues<AllocateOk>(ctx, 'allocate')) {
    const shape = JSON.stringify([value.size, value.extents]);
    const before = segments.get(value.id);
    if (before !== undefined && before !== shape) {
      v.push({
        check: 'name-twice',
        detail: `segment id ${value.id} acknowledged for two different allocations`,
      });
    }
    segments.set(value.id, before ?? shape);
  }
  return v;
};

export const noLostWrites: Check = (ctx) => {
  const v: Violation[] = [];
  const nodes = new Map(ctx.final.nodes.map((n) => [n.name, n]));
  for (const { value } of okValues<JoinOk>(ctx, 'join')) {
    const n = nodes.get(value.name);
    if (!n)
      v.push({
        check: 'lost-write',
        detail: `acknowledged join of ${value.name} is not in the final state`,
      });
    else if (
      n.identity !== value.identity ||
      n.range.start !== value.range.start ||
      n.range.size !== value.range.size
    ) {
      v.push({
        check: 'lost-write',
        detail: `acknowledged join of ${value.name} (${value.identity} ${fmt(value.range)}) became ${n.identity} ${fmt(n.range)}`,
      });
    }
  }
  const segments = new Map(ctx.final.segments.map((s) => [s.id, s]));
  for (const { value } of okValues<AllocateOk>(ctx, 'allocate')) {
    const s = segments.get(value.id);
    if (!s)
      v.push({
        check: 'lost-write',
        detail: `acknowledged segment ${value.id} is not in the final state`,
      });
    else if (JSON.stringify(s.extents) !== JSON.stringify(value.extents)) {
      v.push({
        check: 'lost-write',
        detail: `acknowledged segment ${value.id} changed its extents`,
      });
    }
  }
  return v;
};

export const pidsUnique: Check = (ctx) => {
  const v: Violation[] = [];
  const pids = (r: Range) => `PIDs ${r.start}-${end(r) - 1}`;
  const acked = okValues<PidBlockOk>(ctx, 'pid-block').map(({ value, op }) => ({
    owner: `op ${op.op} (process ${op.process} via ${op.target})`,
    range: value,
  }));
  for (const [a, b, ra, rb] of overlapping(acked)) {
    v.push({
      check: 'pid-twice',
      detail: `acknowledged PID blocks of ${a} ${pids(ra)} and ${b} ${pids(rb)} overlap`,
    });
  }
  const finalBlocks = ctx.final.pidBlocks.map((b, i) => ({ owner: `#${i} ${b.owner}`, range: b }));
  for (const [a, b, ra, rb] of overlapping(finalBlocks)) {
    v.push({
      check: 'pid-twice',
      detail: `final PID blocks ${a} ${pids(ra)} and ${b} ${pids(rb)} overlap`,
    });
  }
  return v;
};

/** Every acknowledged PID block is in the final table: same start, size and owner. */
export const noLostPidBlocks: Check = (ctx) => {
  const finalBlocks = new Map(ctx.final.pidBlocks.map((b) => [b.start, b]));
  const v: Violation[] = [];
  for (const { value, op } of okValues<PidBlockOk>(ctx, 'pid-block')) {
    const b = finalBlocks.get(value.start);
    if (!b || b.size !== value.size || b.owner !== value.owner) {
      v.push({
        check: 'lost-write',
        detail: `acknowledged PID block ${value.start}+${value.size} of ${value.owner} (op ${op.op}) ${b ? `became ${b.start}+${b.size} of ${b.owner}` : 'is not in the final state'}`,
      });
    }
  }
  return v;
};

/** [from, to) intervals during which each machine was on the minority side of a partition. */
export function minorityIntervals(
  events: HistoryEvent[],
  control: string[],
): Map<string, [number, number][]> {
  const quorum = Math.floor(control.length / 2) + 1;
  const result = new Map<string, [number, number][]>();
  let open: { since: number; minority: string[] } | undefined;
  const close = (at: number) => {
    if (!open) return;
    for (const m of open.minority) {
      const list = result.get(m) ?? [];
      list.push([open.since, at]);
      result.set(m, list);
    }
    open = undefined;
  };
  const nemesis = events.filter((e): e is NemesisEvent => e.type === 'nemesis');
  for (const e of nemesis) {
    if (e.f === 'partition') {
      close(e.time);
      const groups = e.value as string[][];
      const minority = groups
        .filter((g) => g.filter((m) => control.includes(m)).length < quorum)
        .flat();
      open = { since: e.time, minority };
    } else if (e.f === 'heal') {
      close(e.time);
    }
  }
  close(Number.POSITIVE_INFINITY);
  return result;
}

export const minorityAcknowledgedNothing: Check = (ctx) => {
  const v: Violation[] = [];
  const intervals = minorityIntervals(ctx.events, ctx.control);
  for (const { invoke, done } of ctx.ops) {
    if (done?.type !== 'ok') continue;
    const inside = (intervals.get(invoke.target) ?? []).find(
      ([a, b]) => a <= invoke.time && done.time <= b,
    );
    if (inside) {
      v.push({
        check: 'minority-ack',
        detail: `${invoke.f} op ${invoke.op} to ${invoke.target} was acknowledged at ${done.time} ms while ${invoke.target} was in a minority (${inside[0]}-${inside[1]} ms)`,
      });
    }
  }
  return v;
};

export const CHECKS: Record<string, Check> = {
  'ranges-overlap': rangesDisjoint,
  'name-twice': namesUnique,
  'lost-write': noLostWrites,
  'pid-twice': pidsUnique,
  'lost-write-pids': noLostPidBlocks,
  'minority-ack': minorityAcknowledgedNothing,
};

export interface CheckResult {
  violations: Violation[];
  /** Completed operations by kind and outcome, e.g. `join:ok`. */
  counts: Record<string, number>;
  /** Operations whose target was in a minority for their whole duration (by outcome). */
  minorityOps: Record<string, number>;
}

export function check(events: HistoryEvent[], final: FinalState, control: string[]): CheckResult {
  const invokes = new Map<number, OpEvent>();
  const dones = new Map<number, OpEvent>();
  for (const e of events) {
    if (e.type === 'nemesis') continue;
    if (e.type === 'invoke') invokes.set(e.op, e);
    else dones.set(e.op, e);
  }
  const ops = [...invokes.values()].map((invoke) => ({ invoke, done: dones.get(invoke.op) }));
  const ctx: CheckContext = { events, final, control, ops };
  const violations = Object.values(CHECKS).flatMap((c) => c(ctx));
  const counts: Record<string, number> = {};
  for (const { invoke, done } of ops) {
    const key = `${invoke.f}:${done?.type ?? 'pending'}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  const intervals = minorityIntervals(events, control);
  const minorityOps: Record<string, number> = {};
  for (const { invoke, done } of ops) {
    if (!done) continue;
    if ((intervals.get(invoke.target) ?? []).some(([a, b]) => a <= invoke.time && done.time <= b)) {
      minorityOps[done.type] = (minorityOps[done.type] ?? 0) + 1;
    }
  }
  return { violations, counts, minorityOps };
}
