#!/usr/bin/env node
// clusteradm: runs the build (dist/) when there is one, else the TypeScript source.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/services/cli/main.js', import.meta.url);
let cli;
if (existsSync(fileURLToPath(built))) {
  cli = await import(built.href);
} else {
  await import('../scripts/ts-loader.mjs');
  cli = await import(new URL('../services/cli/main.ts', import.meta.url).href);
}
process.exitCode = await cli.runClusteradm(process.argv.slice(2));
