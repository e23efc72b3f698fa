import { patient } from './patience.ts';

/** Polls `check` until it gives a value (not undefined/false), or fails naming `what`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + patient(ms);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${lastError ?? ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
