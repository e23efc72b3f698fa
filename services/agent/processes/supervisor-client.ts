/** What the process supervisor asks of the control plane (the one place it names the client). */
import type { ProcessClient } from '../../client/process-client.ts';

export type SupervisorClient = Pick<
  ProcessClient,
  'get' | 'list' | 'report' | 'reportLoad' | 'listLoads' | 'watch'
>;
