#!/usr/bin/env node
// clusterd: runs the build (dist/) when there is one, else the TypeScript source.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/services/controlplane/server.js', import.meta.url);
let server;
if (existsSync(fileURLToPath(built))) {
  server = await import(built.href);
} else {
  await import('../scripts/ts-loader.mjs');
  server = await import(new URL('../services/controlplane/server.ts', import.meta.url).href);
}
await server.main(process.argv.slice(2));
