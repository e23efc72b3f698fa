/**
 * The wire protocol's request parser and executor under libFuzzer with ASan and
 * UBSan (native/fuzz/request_fuzz.c): builds the fuzz target with clang and runs
 * a bounded campaign from the checked-in seeds. Installs nothing: `npm test`
 * runs scripts/ensure-os-deps.mjs first, which installs clang. A missing
 * toolchain is a failure, not a skip. The full 10M-run campaign is
 * `npm run fuzz:wire`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NATIVE = join(ROOT, 'native');
const FUZZER = join(NATIVE, 'build', 'fuzz', 'request_fuzz');
const SEEDS = join(NATIVE, 'fuzz', 'corpus');
// From the seeds alone this takes a few seconds here (10M runs: 47k exec/s on 2
// shared vCPUs). The time cap only guards a stalled or starved run; hitting it
// fails the run-count assertion below instead of passing quietly.
const RUNS = 300_000;
const MAX_SECONDS = 40;

t.test('the fuzz target builds with clang (libFuzzer + ASan + UBSan)', async (t) => {
  const make = spawnSync('make', ['-C', NATIVE, 'fuzz'], { encoding: 'utf8' });
  t.equal(
    make.status,
    0,
    make.status === 0
      ? 'make -C native fuzz'
      : `make -C native fuzz failed (is clang installed? npm test installs it as root):\n${make.stderr}`,
  );
});

t.test(`a bounded campaign: ${RUNS} runs, no finding`, async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'amalgam-fuzz-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const run = spawnSync(
    FUZZER,
    [
      `-runs=${RUNS}`,
      `-max_total_time=${MAX_SECONDS}`,
      '-print_final_stats=1',
      `-artifact_prefix=${scratch}/`,
      scratch, // new corpus entries go here, never into the checked-in seeds
      SEEDS,
    ],
    { encoding: 'utf8', timeout: (MAX_SECONDS + 20) * 1000, maxBuffer: 64 << 20 },
  );
  const out = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  const tail = out.split('\n').slice(-40).join('\n');
  t.equal(
    run.error,
    undefined,
    run.error ? `could not run ${FUZZER}: ${run.error.message}` : 'ran',
  );
  t.equal(run.status, 0, run.status === 0 ? 'exit 0' : `the fuzzer reported a finding:\n${tail}`);
  t.match(
    out,
    /INFO:\s+[1-9]\d* files found in \S*fuzz\/corpus/,
    'it started from the seed corpus',
  );
  const done = /^Done (\d+) runs in (\d+) second/m.exec(out);
  t.ok(done, done ? '"Done N runs"' : `no "Done N runs" line:\n${tail}`);
  t.ok(Number(done?.[1]) >= RUNS, `ran ${done?.[1]} of ${RUNS} (time cap ${MAX_SECONDS}s hit?)`);
  t.notMatch(out, /runtime error|ERROR: (Address|UndefinedBehavior)Sanitizer|check failed/);
  const eps = /^stat::average_exec_per_sec:\s+(\d+)/m.exec(out)?.[1];
  t.comment(`fuzz: ${done?.[1]} runs in ${done?.[2]} s, ${eps} exec/s`);
});
