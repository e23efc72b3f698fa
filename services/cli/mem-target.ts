/**
 * What `clusteradm mem read|write|cas` act on: a global address (`0x40000000`,
 * `1073741824`) or `SEGMENT:OFFSET` (`seg-1:4096`, `seg-1:0x1000`, `seg-1:64Ki`),
 * and the NetworkMemory they go through (the admin credential doubles as the
 * page servers' TLS client certificate; plaintext-loopback ones need none).
 */
import { InvalidArgumentError } from 'commander';
import type { SegmentView } from '../api/contracts.ts';
import { type AmalgamClient, createClient } from '../client/index.ts';
import { NetworkMemory, segmentPieces } from '../client/network-memory.ts';
import { loadAdminConfig, resolveAdminConfigPath } from './config.ts';
import type { CliContext } from './context.ts';
import { parseSize } from './units.ts';

export type MemTarget =
  | { kind: 'address'; address: number }
  | { kind: 'segment'; id: string; offset: number };

const NUMBER = /^(0x[0-9a-f]+|[0-9]+)$/i;

/** A whole number >= 0: decimal, 0x hex, or a size with a unit (64Ki). */
export function parseOffset(text: string): number {
  if (NUMBER.test(text)) {
    const value = Number(text);
    if (!Number.isSafeInteger(value)) throw new InvalidArgumentError(`too large: ${text}`);
    return value;
  }
  return parseSize(text);
}

export function parseTarget(text: string): MemTarget {
  if (NUMBER.test(text)) return { kind: 'address', address: parseOffset(text) };
  const colon = text.lastIndexOf(':');
  if (colon <= 0) {
    throw new InvalidArgumentError(
      `not an address or SEGMENT:OFFSET: ${JSON.stringify(text)} (examples: 0x40000000, seg-1:4096)`,
    );
  }
  return { kind: 'segment', id: text.slice(0, colon), offset: parseOffset(text.slice(colon + 1)) };
}

/** An unsigned 64-bit value: decimal or 0x hex. */
export function parseU64(text: string): bigint {
  if (!NUMBER.test(text)) throw new InvalidArgumentError(`not a 64-bit unsigned integer: ${text}`);
  const value = BigInt(text);
  if (value >= 2n ** 64n) throw new InvalidArgumentError(`larger than 2^64 - 1: ${text}`);
  return value;
}

export interface MemSession {
  client: AmalgamClient;
  memory: NetworkMemory;
  /** The segment a target names, fetched once. */
  segment(id: string): Promise<SegmentView>;
}

/** Runs `fn` with an admin client and a NetworkMemory over it; closes both. */
export async function withNetworkMemory<T>(
  context: CliContext,
  options: { config?: string | undefined; home?: string | undefined },
  fn: (session: MemSession) => Promise<T>,
): Promise<T> {
  const loaded = await loadAdminConfig(resolveAdminConfigPath(options, context));
  const client = createClient({
    endpoints: loaded.config.server,
    ca: loaded.ca,
    cert: loaded.cert,
    key: loaded.key,
  });
  let memory: NetworkMemory | undefined;
  try {
    memory = await NetworkMemory.open({
      client,
      tls: { ca: loaded.ca, cert: loaded.cert, key: loaded.key },
    });
    const segments = new Map<string, Promise<SegmentView>>();
    const segment = (id: string): Promise<SegmentView> => {
      let found = segments.get(id);
      if (!found) {
        found = client.memory.getSegment(id);
        segments.set(id, found);
      }
      return found;
    };
    return await fn({ client, memory, segment });
  } finally {
    await memory?.close();
    await client.close();
  }
}

/** The global address of a target's first byte, for the 8-byte atomics. */
export async function wordAddress(session: MemSession, target: MemTarget): Promise<number> {
  if (target.kind === 'address') return target.address;
  const pieces = segmentPieces(await session.segment(target.id), target.offset, 8);
  return (pieces[0] as { address: number }).address;
}

/** Describes a target for output. */
export function targetFields(target: MemTarget): Record<string, string | number> {
  return target.kind === 'address'
    ? { address: `0x${target.address.toString(16)}` }
    : { segment: target.id, offset: target.offset };
}

export function describeTarget(target: MemTarget): string {
  return target.kind === 'address'
    ? `0x${target.address.toString(16)}`
    : `${target.id}:${target.offset}`;
}
