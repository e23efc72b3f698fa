/**
 * Shared by the launchers: import a service's entry module from the build
 * (dist/) when that build is current, else from the TypeScript source through
 * scripts/ts-loader.mjs. "Current" means newer than every source file, so an
 * edit is never shadowed by a stale build.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** `entry` is relative to the repository, without extension, e.g. "services/cli/main". */
export async function loadEntry(entry) {
  const built = join(root, 'dist', `${entry}.js`);
  const sources = join(root, 'services');
  const buildIsCurrent =
    existsSync(built) && (!existsSync(sources) || statSync(built).mtimeMs >= newestMtime(sources));
  if (buildIsCurrent) return import(new URL(`file://${built}`).href);
  await import('../scripts/ts-loader.mjs');
  return import(new URL(`file://${join(root, `${entry}.ts`)}`).href);
}
