/** Shared by the core unit tests. */
import { isAmalgamError } from '../../../services/core/errors.ts';

/** mulberry32: a tiny seeded PRNG so every run makes the same choices. */
export function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** The code and field of the AmalgamError `fn` throws, or {} when it does not throw. */
export function codeOf(fn: () => unknown): { code?: string; field?: unknown } {
  try {
    fn();
  } catch (err) {
    if (isAmalgamError(err)) return { code: err.code, field: err.details.field };
    throw err;
  }
  return {};
}
