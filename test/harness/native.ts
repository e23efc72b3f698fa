/** The native binaries for tests: built with `make -C native` when missing (or built without TLS). */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const NATIVE_DIR = fileURLToPath(new URL('../../native', import.meta.url));

export function pageServerBinary(): string {
  const binary = join(NATIVE_DIR, 'build', 'pageserver');
  const tlsBuild = join(NATIVE_DIR, 'build', 'obj', '.mode-tls');
  const wantTls = existsSync('/usr/include/openssl/ssl.h');
  if (!existsSync(binary) || (wantTls && !existsSync(tlsBuild))) {
    execFileSync('make', ['-C', NATIVE_DIR], { stdio: 'ignore' });
  }
  return binary;
}
