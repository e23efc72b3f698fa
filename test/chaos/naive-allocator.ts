/**
 * A deliberately naive allocator: the checker's control group. Same operations as amalgam
 * (join a node -> a range, allocate a segment -> extents, claim a block of cluster PIDs from a
 * per-replica counter), but each replica decides alone from
 * its own memory and tells its peers afterwards, best effort (no consensus, no quorum). It is
 * the design the 1997 post warned about: two replicas hand out the same addresses, a partitioned
 * replica keeps acknowledging, a killed one forgets. The chaos suite must catch it.
 *
 *   node naive-allocator.ts --listen HOST:PORT --peers HOST:PORT,HOST:PORT
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const MiB = 1024 * 1024;
const ALIGN = 2 * MiB;
const up = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

interface Node {
  name: string;
  identity: string;
  range: { start: number; size: number };
}
interface Segment {
  id: string;
  size: number;
  extents: { node: string; start: number; size: number }[];
}

interface PidBlock {
  start: number;
  size: number;
  owner: string;
  claimedAt: number;
}

const nodes = new Map<string, Node>();
/** By `start:owner:claimedAt`: two replicas' blocks at one start are both kept (and overlap). */
const pidBlocks = new Map<string, PidBlock>();
let nextPid = 100_000;
const pidKey = (b: PidBlock) => `${b.start}:${b.owner}:${b.claimedAt}`;
const segments = new Map<string, Segment>();
const used = new Map<string, number>();
let next = ALIGN;

interface State {
  nodes: Node[];
  segments: Segment[];
  pidBlocks: PidBlock[];
}

const state = (): State => ({
  nodes: [...nodes.values()],
  segments: [...segments.values()],
  pidBlocks: [...pidBlocks.values()],
});

function merge(state: State): void {
  for (const b of state.pidBlocks ?? []) {
    if (pidBlocks.has(pidKey(b))) continue;
    pidBlocks.set(pidKey(b), b);
    nextPid = Math.max(nextPid, b.start + b.size);
  }
  for (const n of state.nodes) {
    if (!nodes.has(n.name)) {
      nodes.set(n.name, n);
      next = Math.max(next, n.range.start + n.range.size);
    }
  }
  for (const s of state.segments) {
    if (segments.has(s.id)) continue;
    segments.set(s.id, s);
    for (const e of s.extents) used.set(e.node, Math.max(used.get(e.node) ?? 0, e.start + e.size));
  }
}

function gossip(peers: string[]): void {
  const body = JSON.stringify(state());
  for (const peer of peers) {
    fetch(`http://${peer}/gossip`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(1000),
    }).catch(() => {});
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return JSON.parse(text || '{}') as Record<string, unknown>;
}

const { values } = parseArgs({
  options: { listen: { type: 'string' }, peers: { type: 'string' } },
});
const [host, port] = (values.listen ?? '127.0.0.1:7443').split(':');
const peers = (values.peers ?? '').split(',').filter(Boolean);

createServer(async (req, res) => {
  try {
    if (req.method === 'GET' && req.url === '/state') {
      reply(res, 200, state());
    } else if (req.method === 'POST' && req.url === '/gossip') {
      merge((await body(req)) as unknown as State);
      reply(res, 200, {});
    } else if (req.method === 'POST' && req.url === '/join') {
      const b = await body(req);
      const name = String(b.name);
      const known = nodes.get(name);
      if (known && known.identity !== b.identity) {
        reply(res, 409, { code: 'NAME_TAKEN', message: name });
        return;
      }
      const node = known ?? {
        name,
        identity: String(b.identity),
        range: { start: next, size: up(Number(b.contributedBytes)) },
      };
      if (!known) {
        next += node.range.size;
        nodes.set(name, node);
        gossip(peers);
      }
      reply(res, 200, node);
    } else if (req.method === 'POST' && req.url === '/pid-blocks') {
      // This replica's counter alone: a partitioned replica hands out the PIDs the other side does.
      const b = await body(req);
      const block = {
        start: nextPid,
        size: Number(b.size),
        owner: String(b.owner),
        claimedAt: Date.now(),
      };
      nextPid += block.size;
      pidBlocks.set(pidKey(block), block);
      gossip(peers);
      reply(res, 200, block);
    } else if (req.method === 'POST' && req.url === '/segments') {
      const b = await body(req);
      const id = String(b.id);
      const size = up(Number(b.size));
      const known = segments.get(id);
      if (known) {
        if (known.size === size) reply(res, 200, known);
        else reply(res, 409, { code: 'NAME_TAKEN', message: id });
        return;
      }
      // The node with the most room, as this replica alone sees it.
      let best: Node | undefined;
      let room = 0;
      for (const n of nodes.values()) {
        const free = n.range.start + n.range.size - Math.max(used.get(n.name) ?? 0, n.range.start);
        if (free >= size && free > room) {
          best = n;
          room = free;
        }
      }
      if (!best) {
        reply(res, 409, { code: 'RANGE_EXHAUSTED', message: `${size}` });
        return;
      }
      const start = Math.max(used.get(best.name) ?? 0, best.range.start);
      used.set(best.name, start + size);
      const segment = { id, size, extents: [{ node: best.name, start, size }] };
      segments.set(id, segment);
      gossip(peers);
      reply(res, 200, segment);
    } else {
      reply(res, 404, { code: 'NOT_FOUND', message: String(req.url) });
    }
  } catch (err) {
    reply(res, 400, { code: 'INVALID_ARGUMENT', message: (err as Error).message });
  }
}).listen(Number(port), host, () => process.stdout.write(`listening ${host}:${port}\n`));
