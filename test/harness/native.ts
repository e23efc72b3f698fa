/**
 * The native binaries for tests: built with `make -C native` when missing (or
 * built without TLS); a page server started on loopback with any flags.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { findSetpriv } from './processes.ts';

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

/** A page server started by a test, on loopback, that dies with the test process. */
export interface NativePageServer {
  child: ChildProcess;
  port: number;
  /** `127.0.0.1:PORT`. */
  address: string;
  /** Everything it wrote on stderr so far (its log). */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when it is gone. */
  stop(): Promise<void>;
}

/**
 * `pageserver --listen 127.0.0.1:0 ARGS...` (ARGS: the transport, the range,
 * --devices, --peers, limits), ready once it prints `listening`. Spawned with
 * `setpriv --pdeathsig KILL` when available, so it never outlives the test.
 */
export function startNativePageServer(args: string[]): Promise<NativePageServer> {
  const binary = pageServerBinary();
  const setpriv = findSetpriv();
  const argv = ['--listen', '127.0.0.1:0', ...args];
  const child = setpriv
    ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', binary, ...argv], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(binary, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(line);
      if (!m?.[1]) {
        void stop();
        reject(new Error(`unexpected first line from pageserver: ${line}`));
        return;
      }
      const port = Number(m[1]);
      resolve({ child, port, address: `127.0.0.1:${port}`, stderr: () => err, stop });
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`pageserver exited (${code ?? signal}) before listening: ${err}`)),
    );
  });
}
