/**
 * Lets plain `node` run the project's TypeScript (child processes in the
 * integration tests, benchmarks): `node --import ./scripts/ts-loader.mjs x.ts`.
 *
 * Node 20 has no type stripping, so this registers the same ts-node fork that
 * tap uses for the test files, in transpile-only mode (tsc is the type check).
 */
import { fileURLToPath } from 'node:url';

process.env.TS_NODE_TRANSPILE_ONLY ??= '1';
process.env.TS_NODE_PROJECT ??= fileURLToPath(new URL('../tsconfig.json', import.meta.url));

await import('@isaacs/ts-node-temp-fork-for-pr-2009/import');
