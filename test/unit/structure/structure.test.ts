/**
 * The layout's rules (README "Layout"), checked on every run of `npm test`:
 * dependencies point down, `core` does no I/O, there are no import cycles, and
 * no hand-written function or file grows past what a reader takes in at once.
 */
import t from 'tap';
import { importCycles, partOf, servicesTree } from './tree.ts';

const files = servicesTree();

/** Which parts of services/ each part may import (itself always). */
const ALLOWED: Record<string, string[]> = {
  core: [],
  api: ['core'],
  pki: ['core', 'api'],
  store: ['core'],
  reconcile: ['core', 'api'],
  client: ['core', 'api', 'pki', 'reconcile'],
  agent: ['core', 'api', 'pki', 'client', 'reconcile', 'daemon'],
  cli: ['core', 'api', 'pki', 'client', 'daemon'],
  controlplane: ['core', 'api', 'pki', 'store', 'reconcile', 'daemon'],
  daemon: ['core'],
};

/** Node built-ins with no I/O, the only packages `core` may use besides none. */
const CORE_PACKAGES = new Set<string>([]);

t.test('every part of services/ has a rule', async (t) => {
  const parts = [...new Set(files.map((f) => partOf(f.path)))].sort();
  t.same(
    parts.filter((p) => !(p in ALLOWED)),
    [],
    'a new part of services/ says what it may import',
  );
});

t.test('dependencies point down', async (t) => {
  const wrong: string[] = [];
  for (const file of files) {
    const from = partOf(file.path);
    const allowed = new Set([from, ...(ALLOWED[from] ?? [])]);
    for (const target of file.imports) {
      if (!target.startsWith('services/')) {
        wrong.push(`${file.path} -> ${target} (outside services/)`);
      } else if (!allowed.has(partOf(target))) {
        wrong.push(`${file.path} -> ${target}`);
      }
    }
  }
  t.same(wrong, [], 'no import against the layout');
});

t.test('client, agent and cli never import the server', async (t) => {
  const offending = files
    .filter((f) => ['client', 'agent', 'cli'].includes(partOf(f.path)))
    .flatMap((f) =>
      f.imports.filter((i) => partOf(i) === 'controlplane').map((i) => `${f.path} -> ${i}`),
    );
  t.same(offending, []);
});

t.test('core imports nothing with I/O', async (t) => {
  const offending = files
    .filter((f) => partOf(f.path) === 'core')
    .flatMap((f) =>
      f.packages.filter((p) => !CORE_PACKAGES.has(p)).map((p) => `${f.path} -> ${p}`),
    );
  t.same(offending, [], 'core uses no package and no node: module');
});

t.test('no import cycle in services/', async (t) => {
  t.same(importCycles(files), []);
});

const MAX_FUNCTION_LINES = 80;
const MAX_FILE_LINES = 400;

t.test(`no hand-written function over ${MAX_FUNCTION_LINES} lines`, async (t) => {
  const long = files
    .filter((f) => !f.generated)
    .flatMap((f) =>
      f.functions
        .filter((fn) => fn.lines > MAX_FUNCTION_LINES)
        .map((fn) => `${f.path}:${fn.line} ${fn.name} (${fn.lines} lines)`),
    );
  t.same(long, []);
});

t.test(`no hand-written file over ${MAX_FILE_LINES} lines`, async (t) => {
  const long = files
    .filter((f) => !f.generated && f.lines > MAX_FILE_LINES)
    .map((f) => `${f.path} (${f.lines} lines)`);
  t.same(long, []);
});

t.test('the checks can fail', async (t) => {
  // A tiny graph with a cycle and a file that is too long: the same functions
  // must see both, so a passing run above means something.
  const fake = [
    {
      path: 'services/a/x.ts',
      lines: 10,
      generated: false,
      imports: ['services/a/y.ts'],
      packages: [],
      functions: [],
    },
    {
      path: 'services/a/y.ts',
      lines: 10,
      generated: false,
      imports: ['services/a/x.ts'],
      packages: [],
      functions: [],
    },
  ];
  t.same(importCycles(fake), [['services/a/x.ts', 'services/a/y.ts']]);
});
