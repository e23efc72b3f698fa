/**
 * One health check of a running page server: STAT over its own protocol
 * (mutual TLS with the node's certificate unless it serves plaintext), healthy
 * when it answers with the range it was started for. The counters feed the
 * metrics.
 */
import { PageServerClient, type PageServerStats } from '../client/pageserver-client.ts';
import type { RunningPageServer } from './pageserver-process.ts';

export interface NodeTls {
  ca: string;
  cert: string;
  key: string;
  node: string;
}

const STAT_TIMEOUT_MS = 2000;

export async function statPageServer(
  p: RunningPageServer,
  tls: NodeTls | null,
): Promise<{ ok: boolean; stats: PageServerStats }> {
  let conn: PageServerClient | null = null;
  try {
    conn = await withTimeout(
      PageServerClient.connect(p.host, p.port, tls ? { tls } : {}),
      STAT_TIMEOUT_MS,
    );
    const stats = await withTimeout(conn.stat(), STAT_TIMEOUT_MS);
    const ok =
      BigInt(p.range.start) === stats.rangeStart && BigInt(p.range.size) === stats.rangeSize;
    return { ok, stats };
  } finally {
    await conn?.close().catch(() => {});
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
