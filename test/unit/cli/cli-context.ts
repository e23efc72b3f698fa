/** An in-process CliContext that captures output, for running clusteradm commands in tests. */
import type { CliContext } from '../../../services/cli/context.ts';

export interface Captured {
  context: CliContext;
  out: { stdout: string; stderr: string };
}

export function captureContext(overrides: Partial<CliContext> = {}): Captured {
  const out = { stdout: '', stderr: '' };
  const context: CliContext = {
    stdout: (text) => {
      out.stdout += text;
    },
    stderr: (text) => {
      out.stderr += text;
    },
    env: {},
    userHome: '/nonexistent/user-home',
    cwd: '/nonexistent/cwd',
    now: () => Date.parse('2026-01-01T00:00:00Z'),
    hostname: () => 'test-host',
    ...overrides,
  };
  return { context, out };
}
