import t from 'tap';
import { cpuCapacity } from '../../../services/agent/fingerprint/cpu.ts';
import { fingerprint } from '../../../services/agent/fingerprint/index.ts';
import { memoryUsed, parseLoadavg } from '../../../services/agent/fingerprint/load.ts';
import { memoryCapacity } from '../../../services/agent/fingerprint/memory.ts';

const MEMINFO = `MemTotal:       16318480 kB
MemFree:         1234560 kB
MemAvailable:    8159240 kB
Buffers:          102400 kB
Cached:          4096000 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`;

const CPUINFO_X86 = `processor\t: 0
model name\t: Intel(R) Xeon(R)
cpu MHz\t\t: 2000.000
bogomips\t: 4000.00

processor\t: 1
model name\t: Intel(R) Xeon(R)
cpu MHz\t\t: 3000.000
bogomips\t: 4000.00
`;

const CPUINFO_ARM = `processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd

processor\t: 1
BogoMIPS\t: 50.00

processor\t: 2
BogoMIPS\t: 50.00
`;

t.test('memory: MemTotal + SwapTotal, contribution configured or RAM + swap', async (t) => {
  const kib = 1024;
  t.same(memoryCapacity(MEMINFO), {
    memoryBytes: 16318480 * kib,
    swapBytes: 2097148 * kib,
    contributedBytes: (16318480 + 2097148) * kib,
  });
  t.equal(memoryCapacity(MEMINFO, 1 << 30).contributedBytes, 1 << 30);
  t.equal(memoryCapacity('MemTotal: 1024 kB\n').swapBytes, 0, 'no swap line: 0');
  t.throws(() => memoryCapacity('SwapTotal: 1 kB\n'), /MemTotal/);
});

t.test('cpu: count and speed score from MHz, else bogomips', async (t) => {
  t.same(cpuCapacity(CPUINFO_X86), { cpus: 2, cpuSpeed: 2500 });
  t.same(cpuCapacity(CPUINFO_ARM), { cpus: 3, cpuSpeed: 50 });
  t.same(cpuCapacity(''), { cpus: 1, cpuSpeed: 1 }, 'nothing known: 1 CPU, score 1');
});

t.test('load: loadavg and memory used', async (t) => {
  t.same(parseLoadavg('0.52 0.58 1.59 2/789 12345\n'), {
    load1: 0.52,
    load5: 0.58,
    load15: 1.59,
    processes: 789,
  });
  t.throws(() => parseLoadavg('garbage'), /loadavg/);
  t.equal(memoryUsed(MEMINFO), (16318480 - 8159240) * 1024);
  t.equal(
    memoryUsed('MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 20 kB\n'),
    65 * 1024,
    'no MemAvailable: free + buffers + cached',
  );
});

t.test('fingerprint: the registered list merged; a failing one is reported', async (t) => {
  const files: Record<string, string> = {
    '/proc/meminfo': MEMINFO,
    '/proc/cpuinfo': CPUINFO_X86,
    '/proc/loadavg': '1.00 2.00 3.00 1/100 42\n',
  };
  const all = await fingerprint({
    readText: async (p) => files[p] ?? Promise.reject(new Error(`ENOENT ${p}`)),
    contributeBytes: 4096,
  });
  t.same(all.errors, []);
  t.equal(all.capacity.cpus, 2);
  t.equal(all.capacity.contributedBytes, 4096);
  t.equal(all.load.processes, 100);
  t.equal(all.load.load15, 3);
  const partial = await fingerprint({
    readText: async (p) =>
      p === '/proc/loadavg' ? Promise.reject(new Error('no')) : (files[p] as string),
  });
  t.same(
    partial.errors.map((e) => e.name),
    ['load'],
  );
  t.equal(partial.capacity.memoryBytes, 16318480 * 1024);
});

t.test('fingerprint on this machine', async (t) => {
  const { procEnv } = await import('../../../services/agent/fingerprint/index.ts');
  const real = await fingerprint(procEnv());
  t.same(real.errors, []);
  t.ok(real.capacity.memoryBytes > 0);
  t.ok(real.capacity.cpus >= 1);
  t.ok(real.load.processes > 0);
});
