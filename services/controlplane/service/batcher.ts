/**
 * Group commit for contended writes: calls that arrive while a batch is being
 * committed wait and go together in the next one. For joins, which all
 * compare-and-swap the one memory layout key, this turns N conflicting
 * transactions (N rounds of retries) into one transaction per round trip.
 *
 * `run` gets the items and returns one outcome per item, in order: a value or
 * an Error for that item alone. If `run` itself throws, every item of the
 * batch gets that error.
 */
export type Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

export function createBatcher<I, R>(
  run: (items: I[]) => Promise<Outcome<R>[]>,
  maxBatch: number,
): (item: I) => Promise<R> {
  const pending: { item: I; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  let running = false;

  async function drain(): Promise<void> {
    running = true;
    while (pending.length > 0) {
      const batch = pending.splice(0, maxBatch);
      try {
        const outcomes = await run(batch.map((p) => p.item));
        batch.forEach((p, i) => {
          const outcome = outcomes[i];
          if (outcome?.ok) p.resolve(outcome.value);
          else p.reject(outcome ? outcome.error : new Error('batch returned no outcome'));
        });
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    running = false;
  }

  return (item) =>
    new Promise<R>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      if (!running) void drain();
    });
}
