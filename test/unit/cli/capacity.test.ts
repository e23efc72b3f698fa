import t from 'tap';
import {
  capacityOf,
  cpuCapacity,
  parseBogomips,
  parseMeminfo,
} from '../../../services/cli/capacity.ts';

const MEMINFO = `MemTotal:       16303012 kB
MemFree:         1234567 kB
MemAvailable:    9876543 kB
SwapCached:            0 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
`;

t.test('MemTotal and SwapTotal, in bytes', async (t) => {
  t.same(parseMeminfo(MEMINFO), {
    memTotalBytes: 16303012 * 1024,
    swapTotalBytes: 2097148 * 1024,
  });
  t.throws(() => parseMeminfo('MemFree: 1 kB\n'), /MemTotal/);
});

t.test('CPU count and speed: the clock, else bogomips, at least 1', async (t) => {
  t.same(cpuCapacity([{ speed: 2000 }, { speed: 3000 }]), { cpus: 2, cpuSpeed: 2500 });
  t.same(cpuCapacity([{ speed: 0 }, { speed: 0 }], 4191.99), { cpus: 2, cpuSpeed: 4192 });
  t.same(cpuCapacity([{ speed: 0 }]), { cpus: 1, cpuSpeed: 1 });
  t.same(cpuCapacity([]), { cpus: 1, cpuSpeed: 1 });
  t.equal(
    parseBogomips('processor\t: 0\nbogomips\t: 4000.00\nprocessor\t: 1\nBogoMIPS\t: 5000.00\n'),
    4500,
  );
  t.equal(parseBogomips('processor : 0\n'), undefined);
});

t.test('contributed: RAM + swap unless given', async (t) => {
  const meminfo = parseMeminfo(MEMINFO);
  const auto = capacityOf(meminfo, [{ speed: 1000 }], 'auto');
  t.equal(auto.contributedBytes, (16303012 + 2097148) * 1024);
  t.equal(auto.memoryBytes, 16303012 * 1024);
  t.equal(auto.swapBytes, 2097148 * 1024);
  t.equal(capacityOf(meminfo, [{ speed: 1000 }], 2 ** 30).contributedBytes, 2 ** 30);
});
